import CHDF5
import Foundation

/// A dataset addressed by absolute path. Each call opens and closes the HDF5 object, so a
/// `Dataset` value holds no library resources of its own.
public struct Dataset: Sendable {
    public let file: File
    public let path: String

    func error(_ message: String) -> HDF5Error { HDF5Error(file: file.path, object: path, message) }

    func withDataset<T>(_ body: (hid_t) throws -> T) throws -> T {
        try locked {
            let did = H5Dopen2(file.handle.id, path, certify_H5P_DEFAULT())
            if did < 0 { throw error("cannot open dataset") }
            defer { H5Dclose(did) }
            return try body(did)
        }
    }

    /// The dataset's shape ([] for a scalar).
    public var shape: [Int] {
        get throws {
            try withDataset { did in
                let space = H5Dget_space(did)
                defer { H5Sclose(space) }
                let rank = H5Sget_simple_extent_ndims(space)
                if rank < 0 { throw error("cannot read dataspace") }
                var dims = [hsize_t](repeating: 0, count: Int(rank))
                H5Sget_simple_extent_dims(space, &dims, nil)
                return dims.map { Int($0) }
            }
        }
    }

    /// Number of elements.
    public var count: Int { get throws { try shape.reduce(1, *) } }

    /// The element type stored in the file.
    public var dtype: DType {
        get throws {
            try withDataset { did in
                let t = H5Dget_type(did)
                defer { H5Tclose(t) }
                guard let d = classify(t) else { throw error("unsupported datatype (class \(H5Tget_class(t).rawValue))") }
                return d
            }
        }
    }

    /// Reads numeric data (float, integer or bool) as Float64. Float32 and integers convert exactly.
    public func readDoubles() throws -> [Double] {
        try readDoubles(offset: nil, count: nil)
    }

    /// Reads a hyperslab `[offset, offset+count)` (per axis) as Float64; nil reads all.
    public func readDoubles(offset: [Int]?, count: [Int]?) throws -> [Double] {
        let dt = try dtype
        if dt == .string { throw error("holds strings, expected numbers") }
        if dt == .bool {
            let b = try readBools(offset: offset, count: count)
            return b.map { $0 ? 1 : 0 }
        }
        return try read(as: certify_H5T_NATIVE_DOUBLE(), offset: offset, count: count, zero: 0.0)
    }

    /// Reads the hyperslab `[offset, offset+count)` as Float64 into caller-owned storage (which must
    /// hold exactly the hyperslab's element count). Streaming readers reuse one buffer this way, so
    /// large files cost no page faults for fresh allocations. Numeric data; bool reads as 0/1.
    public func readDoubles(into buffer: UnsafeMutableBufferPointer<Double>, offset: [Int], count: [Int]) throws {
        var n = 1
        for c in count {
            let (p, o) = n.multipliedReportingOverflow(by: Swift.max(c, 0))
            guard !o else { throw error("hyperslab count \(count) overflows") }
            n = p
        }
        guard buffer.count == n else { throw error("buffer of \(buffer.count) elements for a hyperslab of \(n)") }
        let dt = try dtype
        if dt == .bool {
            // h5py's bool is an enum, which HDF5 does not convert to double: read the hyperslab as bytes.
            let b = try readBools(offset: offset, count: count)
            guard b.count == n else { throw error("read \(b.count) bools for a hyperslab of \(n)") }
            for i in 0..<n { buffer[i] = b[i] ? 1 : 0 }
            return
        }
        guard dt.isFloatingPoint || dt.isInteger else { throw error("holds \(dt), expected numbers") }
        try withDataset { did in
            let fspace = H5Dget_space(did)
            defer { H5Sclose(fspace) }
            let rank = Int(H5Sget_simple_extent_ndims(fspace))
            var dims = [hsize_t](repeating: 0, count: rank)
            H5Sget_simple_extent_dims(fspace, &dims, nil)
            guard offset.count == rank, count.count == rank,
                  (0..<rank).allSatisfy({ offset[$0] >= 0 && count[$0] >= 0 && offset[$0] + count[$0] <= Int(dims[$0]) }) else {
                throw error("hyperslab offset \(offset) count \(count) outside shape \(dims.map { Int($0) })")
            }
            if n == 0 { return }
            var start = offset.map { hsize_t($0) }
            var cnt = count.map { hsize_t($0) }
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nil, &cnt, nil)
            let mspace = H5Screate_simple(Int32(rank), &cnt, nil)
            defer { H5Sclose(mspace) }
            if H5Dread(did, certify_H5T_NATIVE_DOUBLE(), mspace, fspace, certify_H5P_DEFAULT(), buffer.baseAddress) < 0 {
                throw error("read failed (hyperslab)")
            }
        }
    }

    /// Hyperslabs that cover the whole dataset in row-major order, each of at most `maxElements`
    /// elements (at least one element): the outer axes one index at a time, one axis in blocks, the inner
    /// axes whole. Lets a reader visit any dataset in bounded memory.
    public static func blocks(shape: [Int], maxElements: Int) -> [(offset: [Int], count: [Int])] {
        var out: [(offset: [Int], count: [Int])] = []
        forEachBlock(shape: shape, maxElements: maxElements) { out.append(($0, $1)); return true }
        return out
    }

    /// Calls `body` with each block of `blocks(shape:maxElements:)` without building the list; stops when `body` returns false.
    public static func forEachBlock(shape: [Int], maxElements: Int, _ body: ([Int], [Int]) throws -> Bool) rethrows {
        let rank = shape.count
        if rank == 0 { _ = try body([], []); return }
        if shape.contains(0) { return }
        let cap = Swift.max(1, maxElements)
        // The blocked axis: the outermost axis a whose inner product fits in `cap`.
        var inner = 1, a = rank - 1
        while a > 0 {
            let (p, o) = inner.multipliedReportingOverflow(by: shape[a])
            if o || p > cap { break }
            inner = p
            a -= 1
        }
        let (full, o) = inner.multipliedReportingOverflow(by: shape[a])
        if !o && full <= cap { inner = full; a -= 1 }   // everything from a on fits
        if a < 0 { _ = try body([Int](repeating: 0, count: rank), shape); return }
        let step = Swift.max(1, cap / inner)
        var idx = [Int](repeating: 0, count: rank)
        while true {
            var cnt = [Int](repeating: 1, count: rank)
            for d in (a + 1)..<rank { cnt[d] = shape[d] }
            cnt[a] = Swift.min(step, shape[a] - idx[a])
            if try !body(idx, cnt) { return }
            idx[a] += cnt[a]
            var d = a
            while d >= 0 && idx[d] >= shape[d] {
                idx[d] = 0
                d -= 1
                if d >= 0 { idx[d] += 1 }
            }
            if d < 0 { return }
        }
    }

    /// Reads integer (or bool) data as Int64. Float data is an error (no silent truncation).
    public func readInt64s(offset: [Int]? = nil, count: [Int]? = nil) throws -> [Int64] {
        let dt = try dtype
        if dt == .bool { return try readBools(offset: offset, count: count).map { $0 ? 1 : 0 } }
        guard dt.isInteger else { throw error("holds \(dt), expected integers") }
        return try read(as: certify_H5T_NATIVE_INT64(), offset: offset, count: count, zero: Int64(0))
    }

    /// Reads bool data (h5py's enum encoding, or any integer as nonzero).
    public func readBools(offset: [Int]? = nil, count: [Int]? = nil) throws -> [Bool] {
        let dt = try dtype
        if dt == .bool {
            let raw: [Int8] = try withDataset { did in
                let ft = H5Dget_type(did)
                defer { H5Tclose(ft) }
                let mt = H5Tget_native_type(ft, H5T_DIR_ASCEND)
                defer { H5Tclose(mt) }
                return try readRaw(did: did, memType: mt, offset: offset, count: count, zero: Int8(0))
            }
            return raw.map { $0 != 0 }
        }
        guard dt.isInteger else { throw error("holds \(dt), expected bool") }
        return try readInt64s(offset: offset, count: count).map { $0 != 0 }
    }

    /// Reads Float32 data without widening (for dtype-faithful diffs).
    public func readFloats() throws -> [Float] {
        try read(as: certify_H5T_NATIVE_FLOAT(), offset: nil, count: nil, zero: Float(0))
    }

    /// Reads string data (variable- or fixed-length).
    public func readStrings() throws -> [String] {
        guard try dtype == .string else { throw error("holds \(try dtype), expected strings") }
        return try withDataset { did in
            let ft = H5Dget_type(did)
            defer { H5Tclose(ft) }
            let n = try Int(hsize_t(shapeProduct(did)))
            if H5Tis_variable_str(ft) > 0 {
                let mt = makeVarStringType()
                defer { H5Tclose(mt) }
                var ptrs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
                let st = ptrs.withUnsafeMutableBytes { H5Dread(did, mt, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
                if st < 0 { throw error("string read failed") }
                defer { ptrs.forEach { free($0) } }
                return ptrs.map { $0.map { String(cString: $0) } ?? "" }
            } else {
                let size = H5Tget_size(ft)
                var buf = [UInt8](repeating: 0, count: n * size)
                let st = buf.withUnsafeMutableBytes { H5Dread(did, ft, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
                if st < 0 { throw error("string read failed") }
                return (0..<n).map { i in
                    let s = buf[(i * size)..<((i + 1) * size)].prefix { $0 != 0 }
                    return String(decoding: s, as: UTF8.self)
                }
            }
        }
    }

    /// Reads the whole dataset as typed storage, keeping its dtype.
    public func read() throws -> ArrayData {
        switch try dtype {
        case .float64: return .float64(try readDoubles())
        case .float32: return .float32(try readFloats())
        case .int64: return .int64(try readInt64s())
        case .int32: return .int32(try readInt64s().map { Int32(truncatingIfNeeded: $0) })
        case .uint8: return .uint8(try readInt64s().map { UInt8(truncatingIfNeeded: $0) })
        case .int8: return .int8(try readInt64s().map { Int8(truncatingIfNeeded: $0) })
        case .bool: return .bool(try readBools())
        case .string: return .string(try readStrings())
        }
    }

    public var attributes: Attributes { Attributes(file: file, path: path) }

    // MARK: private

    private func shapeProduct(_ did: hid_t) throws -> Int {
        let space = H5Dget_space(did)
        defer { H5Sclose(space) }
        let n = H5Sget_simple_extent_npoints(space)
        if n < 0 { throw error("cannot read dataspace") }
        return Int(n)
    }

    private func read<T>(as memType: hid_t, offset: [Int]?, count: [Int]?, zero: T) throws -> [T] {
        try withDataset { did in try readRaw(did: did, memType: memType, offset: offset, count: count, zero: zero) }
    }

    private func readRaw<T>(did: hid_t, memType: hid_t, offset: [Int]?, count: [Int]?, zero: T) throws -> [T] {
        let fspace = H5Dget_space(did)
        defer { H5Sclose(fspace) }
        let rank = Int(H5Sget_simple_extent_ndims(fspace))
        var dims = [hsize_t](repeating: 0, count: rank)
        H5Sget_simple_extent_dims(fspace, &dims, nil)
        if let offset, let count {
            guard offset.count == rank, count.count == rank else {
                throw error("hyperslab of rank \(offset.count) on a dataset of rank \(rank)")
            }
            for i in 0..<rank where offset[i] < 0 || count[i] < 0 || offset[i] + count[i] > Int(dims[i]) {
                throw error("hyperslab offset \(offset) count \(count) outside shape \(dims.map { Int($0) })")
            }
            let n = count.reduce(1, *)
            if n == 0 { return [] }
            var start = offset.map { hsize_t($0) }
            var cnt = count.map { hsize_t($0) }
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nil, &cnt, nil)
            let mspace = H5Screate_simple(Int32(rank), &cnt, nil)
            defer { H5Sclose(mspace) }
            var st: herr_t = 0
            // Uninitialised storage: HDF5 fills every element (or the read fails and we throw).
            let out = [T](unsafeUninitializedCapacity: n) { buf, initialised in
                st = H5Dread(did, memType, mspace, fspace, certify_H5P_DEFAULT(), UnsafeMutableRawPointer(buf.baseAddress))
                if st < 0 { for i in 0..<n { (buf.baseAddress! + i).initialize(to: zero) } }
                initialised = n
            }
            if st < 0 { throw error("read failed (hyperslab)") }
            return out
        }
        let n = Int(H5Sget_simple_extent_npoints(fspace))
        var out = [T](repeating: zero, count: n)
        if n == 0 { return out }
        let st = out.withUnsafeMutableBytes { H5Dread(did, memType, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
        if st < 0 { throw error("read failed (corrupt data or unsupported conversion)") }
        return out
    }
}

/// The attributes of a group or dataset, h5py style: `file.attributes["seed"]`.
public struct Attributes: Sendable {
    public let file: File
    public let path: String

    func error(_ name: String, _ message: String) -> HDF5Error {
        HDF5Error(file: file.path, object: "\(path) attribute '\(name)'", message)
    }

    func withObject<T>(_ body: (hid_t) throws -> T) throws -> T {
        try locked {
            let oid = H5Oopen(file.handle.id, path, certify_H5P_DEFAULT())
            if oid < 0 { throw HDF5Error(file: file.path, object: path, "cannot open object") }
            defer { H5Oclose(oid) }
            return try body(oid)
        }
    }

    /// Attribute names in name order.
    public func names() throws -> [String] {
        try withObject { oid in
            var out: [String] = []
            var i: hsize_t = 0
            while true {
                let n = H5Aget_name_by_idx(oid, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, certify_H5P_DEFAULT())
                if n < 0 { break }
                var buf = [CChar](repeating: 0, count: Int(n) + 1)
                H5Aget_name_by_idx(oid, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, Int(n) + 1, certify_H5P_DEFAULT())
                out.append(String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
                i += 1
            }
            return out
        }
    }

    public func contains(_ name: String) -> Bool {
        (try? withObject { H5Aexists($0, name) > 0 }) ?? false
    }

    /// Reads an attribute; nil when absent.
    public subscript(name: String) -> AttributeValue? {
        try? read(name)
    }

    /// Reads an attribute, throwing when absent or of an unsupported type.
    public func read(_ name: String) throws -> AttributeValue {
        try withObject { oid in
            guard H5Aexists(oid, name) > 0 else { throw error(name, "no such attribute") }
            let aid = H5Aopen(oid, name, certify_H5P_DEFAULT())
            if aid < 0 { throw error(name, "cannot open") }
            defer { H5Aclose(aid) }
            let ft = H5Aget_type(aid)
            defer { H5Tclose(ft) }
            let space = H5Aget_space(aid)
            defer { H5Sclose(space) }
            let scalar = H5Sget_simple_extent_ndims(space) == 0
            let n = Int(H5Sget_simple_extent_npoints(space))
            guard let dt = classify(ft) else { throw error(name, "unsupported datatype") }
            switch dt {
            case .string:
                var strs: [String] = []
                if H5Tis_variable_str(ft) > 0 {
                    let mt = makeVarStringType()
                    defer { H5Tclose(mt) }
                    var ptrs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
                    if ptrs.withUnsafeMutableBytes({ H5Aread(aid, mt, $0.baseAddress) }) < 0 { throw error(name, "read failed") }
                    strs = ptrs.map { $0.map { String(cString: $0) } ?? "" }
                    ptrs.forEach { free($0) }
                } else {
                    let size = H5Tget_size(ft)
                    var buf = [UInt8](repeating: 0, count: n * size)
                    if buf.withUnsafeMutableBytes({ H5Aread(aid, ft, $0.baseAddress) }) < 0 { throw error(name, "read failed") }
                    strs = (0..<n).map { String(decoding: buf[($0 * size)..<(($0 + 1) * size)].prefix { $0 != 0 }, as: UTF8.self) }
                }
                return scalar ? .string(strs.first ?? "") : .strings(strs)
            case .float64, .float32:
                var v = [Double](repeating: 0, count: n)
                if v.withUnsafeMutableBytes({ H5Aread(aid, certify_H5T_NATIVE_DOUBLE(), $0.baseAddress) }) < 0 { throw error(name, "read failed") }
                return scalar ? .double(v[0]) : .doubles(v)
            case .bool:
                let mt = H5Tget_native_type(ft, H5T_DIR_ASCEND)
                defer { H5Tclose(mt) }
                var v = [Int8](repeating: 0, count: n)
                if v.withUnsafeMutableBytes({ H5Aread(aid, mt, $0.baseAddress) }) < 0 { throw error(name, "read failed") }
                return scalar ? .int(Int64(v[0])) : .ints(v.map { Int64($0) })
            default:
                var v = [Int64](repeating: 0, count: n)
                if v.withUnsafeMutableBytes({ H5Aread(aid, certify_H5T_NATIVE_INT64(), $0.baseAddress) }) < 0 { throw error(name, "read failed") }
                return scalar ? .int(v[0]) : .ints(v)
            }
        }
    }

    /// Writes (or replaces) an attribute.
    public func write(_ name: String, _ value: AttributeValue) throws {
        try withObject { oid in
            if H5Aexists(oid, name) > 0 { H5Adelete(oid, name) }
            var ownedType: hid_t = -1
            let type: hid_t
            var count = 1
            var scalar = true
            switch value {
            case .string: ownedType = makeVarStringType(); type = ownedType
            case .strings(let s): ownedType = makeVarStringType(); type = ownedType; count = s.count; scalar = false
            case .double: type = certify_H5T_NATIVE_DOUBLE()
            case .doubles(let d): type = certify_H5T_NATIVE_DOUBLE(); count = d.count; scalar = false
            case .int: type = certify_H5T_NATIVE_INT64()
            case .ints(let i): type = certify_H5T_NATIVE_INT64(); count = i.count; scalar = false
            }
            defer { if ownedType >= 0 { H5Tclose(ownedType) } }
            var dims = [hsize_t(count)]
            let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
            defer { H5Sclose(space) }
            let aid = H5Acreate2(oid, name, type, space, certify_H5P_DEFAULT(), certify_H5P_DEFAULT())
            if aid < 0 { throw error(name, "cannot create attribute (is the file open read-only?)") }
            defer { H5Aclose(aid) }
            let st: herr_t
            switch value {
            case .string(let s):
                let c = [strdup(s)]
                defer { free(c[0]) }
                st = c.withUnsafeBytes { H5Awrite(aid, type, $0.baseAddress) }
            case .strings(let s):
                let c = s.map { strdup($0) }
                defer { c.forEach { free($0) } }
                st = c.withUnsafeBytes { H5Awrite(aid, type, $0.baseAddress) }
            case .double(let d): st = [d].withUnsafeBytes { H5Awrite(aid, type, $0.baseAddress) }
            case .doubles(let d): st = d.withUnsafeBytes { H5Awrite(aid, type, $0.baseAddress) }
            case .int(let i): st = [i].withUnsafeBytes { H5Awrite(aid, type, $0.baseAddress) }
            case .ints(let i): st = i.withUnsafeBytes { H5Awrite(aid, type, $0.baseAddress) }
            }
            if st < 0 { throw error(name, "write failed") }
        }
    }
}
