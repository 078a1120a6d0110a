// An h5py-like Swift API over Debian's HDF5 C library.
//
//   let f = try File.open("golden/core/softmax.h5")
//   let x = try f.dataset("case0/inputs/x").readDoubles()
//   let shape = try f.dataset("case0/inputs/x").shape
//
// Every failure is a thrown `HDF5Error` naming the file and the object; HDF5's own
// error printing is silenced once, when the first file is opened. The serial build of
// HDF5 is not thread-safe, so every call into the library holds one process-wide lock.

import CHDF5
import Foundation

/// The single lock that serialises calls into the (non-thread-safe) HDF5 library.
let hdf5Lock = NSRecursiveLock()

@inline(__always)
func locked<T>(_ body: () throws -> T) rethrows -> T {
    hdf5Lock.lock()
    defer { hdf5Lock.unlock() }
    // Debian builds HDF5 thread-safe, where the automatic error printer is per thread: silence it
    // on whichever thread makes the call.
    certify_H5_silence_errors()
    return try body()
}

private let initialise: Void = {
    H5open()
    certify_H5_silence_errors()
}()

/// An error from the HDF5 layer. The description always names the file and the object.
public struct HDF5Error: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var object: String
    public var message: String
    public init(file: String, object: String, _ message: String) {
        self.file = file
        self.object = object
        self.message = message
    }
    public var description: String {
        object.isEmpty ? "\(file): \(message)" : "\(file): \(object): \(message)"
    }
}

/// The element types Certify reads and writes.
public enum DType: String, Sendable, CustomStringConvertible, CaseIterable {
    case float64, float32, int64, int32, uint8, int8, bool, string
    public var description: String { rawValue }
    public var isFloatingPoint: Bool { self == .float64 || self == .float32 }
    public var isInteger: Bool { [.int64, .int32, .uint8, .int8].contains(self) }
}

/// How a file is opened.
public enum FileMode: Sendable {
    case readOnly, readWrite
}

/// A node handle that closes itself.
final class Handle {
    let id: hid_t
    let close: (hid_t) -> herr_t
    init(_ id: hid_t, close: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.close = close
    }
    deinit { locked { _ = close(id) } }
}

func normalise(_ path: String) -> String {
    let parts = path.split(separator: "/", omittingEmptySubsequences: true)
    return "/" + parts.joined(separator: "/")
}

/// An open HDF5 file. Closing happens when the last reference goes away, or on `close()`.
public final class File: @unchecked Sendable {
    public let path: String
    let handle: Handle
    public let mode: FileMode

    init(path: String, id: hid_t, mode: FileMode) {
        self.path = path
        self.handle = Handle(id) { H5Fclose($0) }
        self.mode = mode
    }

    /// Opens an existing file. Throws a clear error for a missing file, a directory, or a file that is not HDF5.
    public static func open(_ path: String, mode: FileMode = .readOnly) throws -> File {
        _ = initialise
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw HDF5Error(file: path, object: "", "no such file")
        }
        if isDir.boolValue { throw HDF5Error(file: path, object: "", "is a directory, expected an HDF5 file") }
        return try locked {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            if size == 0 { throw HDF5Error(file: path, object: "", "is an empty file, expected an HDF5 file") }
            let isH5 = certify_H5F_is_hdf5(path)
            if isH5 <= 0 { throw HDF5Error(file: path, object: "", "is not an HDF5 file (no HDF5 signature)") }
            let flags = mode == .readOnly ? certify_H5F_ACC_RDONLY() : certify_H5F_ACC_RDWR()
            let id = H5Fopen(path, flags, certify_H5P_DEFAULT())
            if id < 0 { throw HDF5Error(file: path, object: "", "unable to open (truncated or corrupt HDF5 file)") }
            return File(path: path, id: id, mode: mode)
        }
    }

    /// Creates a file, truncating any existing file at that path.
    public static func create(_ path: String) throws -> File {
        _ = initialise
        return try locked {
            let id = H5Fcreate(path, certify_H5F_ACC_TRUNC(), certify_H5P_DEFAULT(), certify_H5P_DEFAULT())
            if id < 0 { throw HDF5Error(file: path, object: "", "unable to create file") }
            return File(path: path, id: id, mode: .readWrite)
        }
    }

    /// Flushes to disk.
    public func flush() throws {
        try locked {
            if H5Fflush(handle.id, H5F_SCOPE_GLOBAL) < 0 { throw HDF5Error(file: path, object: "", "flush failed") }
        }
    }

    /// The root group.
    public var root: Group { Group(file: self, path: "/", handle: nil) }

    // Convenience forwarding to the root group, h5py style.
    public func group(_ path: String) throws -> Group { try root.group(path) }
    public func dataset(_ path: String) throws -> Dataset { try root.dataset(path) }
    public func contains(_ path: String) -> Bool { root.contains(path) }
    public func createGroup(_ path: String) throws -> Group { try root.createGroup(path) }
    public var attributes: Attributes { root.attributes }
}
