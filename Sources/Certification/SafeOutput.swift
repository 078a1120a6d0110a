// The one way Certify writes a file a user named (eval, blockmnist export, audit JSON/SVG, reports,
// CHECKLIST.md, distilled sets, plans): check the target before any work, write to a temporary file in
// the target's folder, then rename(2) over it. Only a regular file is ever replaced; a directory,
// device, FIFO or symbolic link at the target is refused untouched. Missing parent folders are created.

import Foundation

/// An output path that cannot be written. The message names the path the user gave.
public struct OutputError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

public enum SafeOutput {
    /// What is at `path` now, without following a final symbolic link.
    enum Kind { case absent, regular, directory, symlink, other(String) }

    static func kind(_ path: String) -> Kind {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .absent }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        case S_IFIFO: return .other("a FIFO")
        case S_IFCHR, S_IFBLK: return .other("a device")
        case S_IFSOCK: return .other("a socket")
        default: return .other("not a regular file")
        }
    }

    /// Checks that `path` can be written, before any work is done: the target is absent or a regular
    /// file, and its folder exists (created when missing) and is writable. Throws `OutputError`.
    public static func prepare(_ path: String) throws {
        guard !path.isEmpty else { throw OutputError(path: "''", "empty output path") }
        switch kind(path) {
        case .absent, .regular: break
        case .directory: throw OutputError(path: path, "is a directory; name a file (it is never replaced)")
        case .symlink: throw OutputError(path: path, "is a symbolic link; name the file itself (a link is never replaced)")
        case .other(let what): throw OutputError(path: path, "is \(what), not a regular file; refusing to replace it")
        }
        let dir = folder(of: path)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            guard isDir.boolValue else { throw OutputError(path: path, "its folder '\(dir)' is not a directory") }
        } else {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw OutputError(path: path, "cannot create its folder '\(dir)' (\(readableError(error)))")
            }
        }
        guard access(dir, W_OK) == 0 else { throw OutputError(path: path, "its folder '\(dir)' is not writable") }
    }

    /// Writes `path` atomically: `body` writes the content to the temporary path it is given.
    /// On any failure the target is unchanged and the temporary file is removed.
    public static func write(_ path: String, _ body: (String) throws -> Void) throws {
        try withoutActuallyEscaping(body) { try writeAll([(path, $0)]) }
    }

    /// Writes bytes to `path` atomically.
    public static func write(_ path: String, data: Data) throws {
        try write(path) { tmp in
            do { try data.write(to: URL(fileURLWithPath: tmp)) } catch {
                throw OutputError(path: path, "cannot write (\(readableError(error)))")
            }
        }
    }

    /// Writes text (UTF-8) to `path` atomically.
    public static func write(_ path: String, text: String) throws { try write(path, data: Data(text.utf8)) }

    /// Writes several files: every one is written to its temporary file first, and only when all of
    /// them succeeded are they renamed into place. When one fails, no target has changed.
    public static func writeAll(_ items: [(path: String, body: (String) throws -> Void)]) throws {
        for item in items { try prepare(item.path) }
        var temps: [String] = []
        defer { for t in temps { unlink(t) } }
        for item in items {
            let tmp = temporaryPath(for: item.path)
            temps.append(tmp)
            do { try item.body(tmp) } catch let e as OutputError { throw e } catch {
                // Errors from the writer name the temporary file; name the user's path instead.
                throw OutputError(path: item.path, "cannot write (\(readableError(error).replacingOccurrences(of: tmp, with: item.path)))")
            }
        }
        for (item, tmp) in zip(items, temps) {
            // Re-check just before the rename: something may have appeared at the target meanwhile.
            try prepare(item.path)
            guard rename(tmp, item.path) == 0 else {
                throw OutputError(path: item.path, "cannot rename into place (\(String(cString: strerror(errno))))")
            }
        }
        temps.removeAll()
    }

    static func folder(of path: String) -> String {
        let d = (path as NSString).deletingLastPathComponent
        return d.isEmpty ? "." : d
    }

    /// A hidden temporary name in the target's folder (same file system, so rename(2) is atomic).
    static func temporaryPath(for path: String) -> String {
        folder(of: path) + "/.\((path as NSString).lastPathComponent).\(getpid()).\(UInt32.random(in: 0 ... .max)).tmp"
    }
}
