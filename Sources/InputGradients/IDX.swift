// IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw, read through zlib's gz* API
// (gzread passes uncompressed files through unchanged, so one path reads both).
//
// Format (LeCun's MNIST page): magic = 0x00 0x00 <type> <ndims>, then ndims big-endian UInt32
// sizes, then the data, big-endian, row-major. Types: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32,
// 0x0D f32, 0x0E f64. Every problem (missing file, bad magic, truncation, trailing bytes) is an
// `InputError` naming the file and what was expected.

import CZlib
import Certification
import Foundation
import Tensor

/// The element type stored in an IDX file.
public enum IDXType: UInt8, Sendable, CaseIterable {
    case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E
    public var byteWidth: Int {
        switch self {
        case .uint8, .int8: 1
        case .int16: 2
        case .int32, .float32: 4
        case .float64: 8
        }
    }
}

/// An IDX array: its shape, element type and values as Float64 (exact for every IDX type).
public struct IDXArray: Sendable, Equatable {
    public var type: IDXType
    public var shape: [Int]
    public var values: [Double]
    public init(type: IDXType, shape: [Int], values: [Double]) {
        self.type = type
        self.shape = shape
        self.values = values
    }
}

public enum IDX {
    /// Reads an IDX file (gzip or raw). `expectDims`, when given, is the required rank.
    public static func read(_ path: String, expectDims: Int? = nil) throws -> IDXArray {
        guard FileManager.default.fileExists(atPath: path) else {
            throw InputError(file: path, object: "IDX file", "missing file (expected an MNIST-format IDX file, gzip or raw)")
        }
        guard let gz = gzopen(path, "rb") else {
            throw InputError(file: path, object: "IDX file", "cannot open for reading")
        }
        defer { gzclose(gz) }
        // Reads n bytes in pieces of at most 16 MiB, growing the buffer as data arrives: a header that claims
        // more data than the file holds is caught as truncation before the claimed size is allocated.
        func readExactly(_ n: Int, what: String) throws -> [UInt8] {
            var buf = [UInt8]()
            buf.reserveCapacity(Swift.min(n, 1 << 24))
            var got = 0
            while got < n {
                let chunk = Swift.min(n - got, 1 << 24)
                buf.append(contentsOf: repeatElement(0, count: chunk))
                let r = buf.withUnsafeMutableBytes { gzread(gz, $0.baseAddress! + got, UInt32(chunk)) }
                if r < 0 {
                    var errnum: Int32 = 0
                    let msg = gzerror(gz, &errnum).map { String(cString: $0) } ?? "unknown zlib error"
                    throw InputError(file: path, object: what, "corrupt compressed data: \(msg)")
                }
                got += Int(r)
                if r < chunk { buf.removeLast(chunk - Int(r)); if r == 0 { break } }
            }
            guard got == n else {
                throw InputError(file: path, object: what, "truncated: expected \(n) bytes, found \(got)")
            }
            return buf
        }
        let magic = try readExactly(4, what: "IDX header")
        guard magic[0] == 0, magic[1] == 0, let type = IDXType(rawValue: magic[2]) else {
            throw InputError(file: path, object: "IDX header",
                             "bad magic \(magic.map { String(format: "%02x", $0) }.joined()); expected 0000<type><ndims> with type in 08,09,0b,0c,0d,0e")
        }
        let ndims = Int(magic[3])
        guard ndims >= 1 else { throw InputError(file: path, object: "IDX header", "zero dimensions") }
        if let e = expectDims, e != ndims {
            throw InputError(file: path, object: "IDX header", "expected \(e) dimensions, found \(ndims)")
        }
        let dimBytes = try readExactly(4 * ndims, what: "IDX dimensions")
        var shape: [Int] = []
        for d in 0..<ndims {
            let v = (0..<4).reduce(UInt32(0)) { ($0 << 8) | UInt32(dimBytes[4 * d + $1]) }
            shape.append(Int(v))
        }
        // The size the header claims: checked arithmetic, the file's own size (for an uncompressed file), the budget.
        let count: Int, dataBytes: Int
        do {
            count = try checkedCount(shape, "IDX dimensions")
            dataBytes = try checkedMul(count, type.byteWidth, "IDX dimensions")
        } catch {
            throw InputError(file: path, object: "IDX dimensions", "implausible shape \(shape): its element count overflows")
        }
        let header = 4 + 4 * ndims
        if gzdirect(gz) != 0, let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil,
           size - header < dataBytes {
            throw InputError(file: path, object: "IDX data (shape \(shape), \(type))",
                             "truncated: expected \(dataBytes) bytes, found \(Swift.max(0, size - header)) (the header claims more data than the file holds)")
        }
        do {
            try Budget.require(elements: Double(count), bytesPerElement: 8 + type.byteWidth, "reading shape \(shape) (\(type))")
        } catch let e as ShapeError {
            throw InputError(file: path, object: "IDX dimensions", e.description)
        }
        let bytes = try readExactly(count * type.byteWidth, what: "IDX data (shape \(shape), \(type))")
        // Nothing may follow the data.
        var extra: UInt8 = 0
        let tail = gzread(gz, &extra, 1)
        if tail > 0 {
            throw InputError(file: path, object: "IDX data", "trailing bytes after the \(count) elements of shape \(shape)")
        } else if tail < 0 {
            var errnum: Int32 = 0
            let msg = gzerror(gz, &errnum).map { String(cString: $0) } ?? "unknown zlib error"
            throw InputError(file: path, object: "gzip trailer", "truncated or corrupt after the data: \(msg)")
        }
        var values = [Double](repeating: 0, count: count)
        bytes.withUnsafeBufferPointer { b in
            values.withUnsafeMutableBufferPointer { v in
                let w = type.byteWidth
                for i in 0..<count {
                    var u: UInt64 = 0
                    for j in 0..<w { u = (u << 8) | UInt64(b[i * w + j]) }
                    switch type {
                    case .uint8: v[i] = Double(u)
                    case .int8: v[i] = Double(Int8(bitPattern: UInt8(u)))
                    case .int16: v[i] = Double(Int16(bitPattern: UInt16(u)))
                    case .int32: v[i] = Double(Int32(bitPattern: UInt32(u)))
                    case .float32: v[i] = Double(Float(bitPattern: UInt32(u)))
                    case .float64: v[i] = Double(bitPattern: u)
                    }
                }
            }
        }
        return IDXArray(type: type, shape: shape, values: values)
    }

    /// Writes an IDX file (gzip when `compressed`); used by tests and by users who want IDX back.
    /// Values must be representable in `type`.
    public static func write(_ array: IDXArray, to path: String, compressed: Bool) throws {
        var bytes: [UInt8] = [0, 0, array.type.rawValue, UInt8(array.shape.count)]
        for d in array.shape {
            let u = UInt32(d)
            bytes += [UInt8(u >> 24), UInt8((u >> 16) & 0xff), UInt8((u >> 8) & 0xff), UInt8(u & 0xff)]
        }
        bytes.reserveCapacity(bytes.count + array.values.count * array.type.byteWidth)
        for x in array.values {
            let u: UInt64
            switch array.type {
            case .uint8: u = UInt64(UInt8(x))
            case .int8: u = UInt64(UInt8(bitPattern: Int8(x)))
            case .int16: u = UInt64(UInt16(bitPattern: Int16(x)))
            case .int32: u = UInt64(UInt32(bitPattern: Int32(x)))
            case .float32: u = UInt64(Float(x).bitPattern)
            case .float64: u = x.bitPattern
            }
            for j in stride(from: array.type.byteWidth - 1, through: 0, by: -1) { bytes.append(UInt8((u >> (8 * UInt64(j))) & 0xff)) }
        }
        try writeBytes(bytes, to: path, compressed: compressed)
    }

    /// Writes bytes as they are, or gzip-compressed.
    static func writeBytes(_ bytes: [UInt8], to path: String, compressed: Bool) throws {
        if compressed {
            guard let gz = gzopen(path, "wb") else { throw InputError(file: path, object: "IDX file", "cannot open for writing") }
            let n = bytes.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
            let rc = gzclose(gz)
            guard n == bytes.count, rc == Z_OK else { throw InputError(file: path, object: "IDX file", "write failed") }
        } else {
            do { try Data(bytes).write(to: URL(fileURLWithPath: path)) } catch {
                throw InputError(file: path, object: "IDX file", "write failed: \(readableError(error))")
            }
        }
    }
}

/// An MNIST-format image classification set: images [n, rows, cols] scaled to [0, 1] (u8 / 255) and labels.
public struct ImageDataset: Sendable {
    public var images: Tensor
    public var labels: [Int]
    public init(images: Tensor, labels: [Int]) {
        self.images = images
        self.labels = labels
    }
    public var count: Int { labels.count }
}

public enum MNISTFormat {
    /// Debian's dataset-fashion-mnist location.
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    public enum Split: String, Sendable { case train, test }

    /// The file stem of a split (`train-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, …).
    public static func stem(_ split: Split, images: Bool) -> String {
        (split == .train ? "train" : "t10k") + (images ? "-images-idx3-ubyte" : "-labels-idx1-ubyte")
    }

    /// Finds `<stem>.gz` or `<stem>` in a directory.
    public static func locate(_ directory: String, _ stem: String) throws -> String {
        for name in [stem + ".gz", stem] {
            let p = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        throw InputError(file: (directory as NSString).appendingPathComponent(stem + ".gz"), object: "IDX file",
                         "missing file (neither \(stem).gz nor \(stem) in \(directory); install Debian's dataset-fashion-mnist or pass MNIST IDX files)")
    }

    /// Loads one split from a directory of MNIST-format IDX files; `limit` keeps the first n examples.
    public static func load(directory: String = fashionMNISTDirectory, split: Split, limit: Int? = nil) throws -> ImageDataset {
        let ip = try locate(directory, stem(split, images: true))
        let lp = try locate(directory, stem(split, images: false))
        return try load(imagesPath: ip, labelsPath: lp, limit: limit)
    }

    /// Loads an images file (u8, rank 3) and a labels file (u8, rank 1) that must agree in count.
    public static func load(imagesPath: String, labelsPath: String, limit: Int? = nil) throws -> ImageDataset {
        let im = try IDX.read(imagesPath, expectDims: 3)
        let lb = try IDX.read(labelsPath, expectDims: 1)
        guard im.type == .uint8 else { throw InputError(file: imagesPath, object: "IDX header", "expected u8 pixels, found \(im.type)") }
        guard lb.type == .uint8 else { throw InputError(file: labelsPath, object: "IDX header", "expected u8 labels, found \(lb.type)") }
        guard im.shape[0] == lb.shape[0] else {
            throw InputError(file: labelsPath, object: "IDX dimensions",
                             "\(lb.shape[0]) labels but \(imagesPath) holds \(im.shape[0]) images")
        }
        let n = Swift.min(im.shape[0], Swift.max(0, limit ?? im.shape[0]))
        let per = im.shape[1] * im.shape[2]
        guard per > 0 else {
            throw InputError(file: imagesPath, object: "IDX dimensions", "images of \(im.shape[1])×\(im.shape[2]) pixels; expected non-empty images")
        }
        let pixels = im.values[0..<(n * per)].map { $0 / 255.0 }
        return ImageDataset(images: Tensor(unchecked: [n, im.shape[1], im.shape[2]], pixels),
                            labels: lb.values[0..<n].map { Int($0) })
    }
}
