import CHDF5
import Foundation

/// Typed element storage for reading and writing datasets.
public enum ArrayData: Sendable, Equatable {
    case float64([Double]), float32([Float]), int64([Int64]), int32([Int32])
    case uint8([UInt8]), int8([Int8]), bool([Bool]), string([String])

    public var dtype: DType {
        switch self {
        case .float64: .float64
        case .float32: .float32
        case .int64: .int64
        case .int32: .int32
        case .uint8: .uint8
        case .int8: .int8
        case .bool: .bool
        case .string: .string
        }
    }

    public var count: Int {
        switch self {
        case .float64(let v): v.count
        case .float32(let v): v.count
        case .int64(let v): v.count
        case .int32(let v): v.count
        case .uint8(let v): v.count
        case .int8(let v): v.count
        case .bool(let v): v.count
        case .string(let v): v.count
        }
    }

    /// Numeric data as Float64 (Bool as 0/1). Strings have no numeric view.
    public var doubles: [Double]? {
        switch self {
        case .float64(let v): v
        case .float32(let v): v.map(Double.init)
        case .int64(let v): v.map(Double.init)
        case .int32(let v): v.map(Double.init)
        case .uint8(let v): v.map(Double.init)
        case .int8(let v): v.map(Double.init)
        case .bool(let v): v.map { $0 ? 1 : 0 }
        case .string: nil
        }
    }
}

/// An attribute value.
public enum AttributeValue: Sendable, Equatable, CustomStringConvertible {
    case string(String), strings([String])
    case double(Double), doubles([Double])
    case int(Int64), ints([Int64])

    public var description: String {
        switch self {
        case .string(let s): s
        case .strings(let s): s.description
        case .double(let d): "\(d)"
        case .doubles(let d): d.description
        case .int(let i): "\(i)"
        case .ints(let i): i.description
        }
    }
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var doubleValue: Double? {
        switch self {
        case .double(let d): d
        case .int(let i): Double(i)
        case .doubles(let d) where d.count == 1: d[0]
        case .ints(let i) where i.count == 1: Double(i[0])
        default: nil
        }
    }
    public var intValue: Int64? {
        switch self {
        case .int(let i): i
        case .ints(let i) where i.count == 1: i[0]
        case .double(let d) where d.rounded() == d: Int64(exactly: d)
        default: nil
        }
    }
}

// MARK: - Datatype helpers

func nativeType(_ d: DType) -> hid_t {
    switch d {
    case .float64: certify_H5T_NATIVE_DOUBLE()
    case .float32: certify_H5T_NATIVE_FLOAT()
    case .int64: certify_H5T_NATIVE_INT64()
    case .int32: certify_H5T_NATIVE_INT32()
    case .uint8: certify_H5T_NATIVE_UINT8()
    case .int8: certify_H5T_NATIVE_INT8()
    case .bool, .string: -1
    }
}

/// The enum type h5py uses for numpy bool: int8 base with FALSE = 0, TRUE = 1.
func makeBoolType() -> hid_t {
    let t = H5Tenum_create(certify_H5T_NATIVE_INT8())
    var f: Int8 = 0, tr: Int8 = 1
    H5Tenum_insert(t, "FALSE", &f)
    H5Tenum_insert(t, "TRUE", &tr)
    return t
}

func makeVarStringType() -> hid_t {
    let t = H5Tcopy(certify_H5T_C_S1())
    H5Tset_size(t, -1 /* H5T_VARIABLE */)
    H5Tset_cset(t, H5T_CSET_UTF8)
    return t
}

/// Classifies a file datatype into a DType, or nil for unsupported types.
func classify(_ type: hid_t) -> DType? {
    let cls = H5Tget_class(type)
    let size = H5Tget_size(type)
    switch cls {
    case H5T_FLOAT:
        return size == 8 ? .float64 : size == 4 ? .float32 : nil
    case H5T_INTEGER:
        let signed = H5Tget_sign(type) == H5T_SGN_2
        switch (size, signed) {
        case (8, true): return .int64
        case (4, true): return .int32
        case (1, false): return .uint8
        case (1, true): return .int8
        case (8, false): return .int64  // read through conversion; values beyond Int64.max fail to convert
        case (4, false): return .int64
        case (2, _): return .int32
        default: return nil
        }
    case H5T_ENUM:
        if H5Tget_nmembers(type) == 2, size == 1 { return .bool }
        return nil
    case H5T_STRING:
        return .string
    default:
        return nil
    }
}

// MARK: - Group

/// A group addressed by its absolute path inside a file. Children are addressed by relative
/// paths such as `"case0/outputs/loss"`.
public struct Group: Sendable {
    public let file: File
    public let path: String
    init(file: File, path: String, handle: Handle?) {
        self.file = file
        self.path = normalise(path)
    }

    func absolute(_ rel: String) -> String {
        rel.hasPrefix("/") ? normalise(rel) : normalise(path + "/" + rel)
    }

    func error(_ object: String, _ message: String) -> HDF5Error {
        HDF5Error(file: file.path, object: object, message)
    }

    /// True when every component of `rel` exists (as a link) under this group.
    public func contains(_ rel: String) -> Bool {
        let abs = absolute(rel)
        if abs == "/" { return true }
        return locked {
            var prefix = ""
            for part in abs.split(separator: "/") {
                prefix += "/" + part
                if H5Lexists(file.handle.id, prefix, certify_H5P_DEFAULT()) <= 0 { return false }
                // Only descend through groups.
                let oid = H5Oopen(file.handle.id, prefix, certify_H5P_DEFAULT())
                if oid < 0 { return false }
                let t = H5Iget_type(oid)
                H5Oclose(oid)
                if prefix != abs && t != H5I_GROUP { return false }
            }
            return true
        }
    }

    enum Kind { case group, dataset, other }

    func kind(_ abs: String) throws -> Kind {
        guard contains(abs) else { throw error(abs, "no such object") }
        return try locked {
            let oid = H5Oopen(file.handle.id, abs, certify_H5P_DEFAULT())
            if oid < 0 { throw error(abs, "cannot open object") }
            defer { H5Oclose(oid) }
            switch H5Iget_type(oid) {
            case H5I_GROUP: return .group
            case H5I_DATASET: return .dataset
            default: return .other
            }
        }
    }

    /// A sub-group. Throws when the path is missing or is not a group.
    public func group(_ rel: String) throws -> Group {
        let abs = absolute(rel)
        if abs == "/" { return file.root }
        guard try kind(abs) == .group else { throw error(abs, "is not a group") }
        return Group(file: file, path: abs, handle: nil)
    }

    /// A dataset. Throws when the path is missing or is not a dataset.
    public func dataset(_ rel: String) throws -> Dataset {
        let abs = absolute(rel)
        guard try kind(abs) == .dataset else { throw error(abs, "is not a dataset") }
        return Dataset(file: file, path: abs)
    }

    public func isGroup(_ rel: String) -> Bool { (try? kind(absolute(rel))) == .group }
    public func isDataset(_ rel: String) -> Bool { (try? kind(absolute(rel))) == .dataset }

    /// The names of this group's direct children, sorted by name.
    public func children() throws -> [String] {
        try locked {
            let gid = H5Gopen2(file.handle.id, path, certify_H5P_DEFAULT())
            if gid < 0 { throw error(path, "cannot open group") }
            defer { H5Gclose(gid) }
            var info = H5G_info_t()
            if H5Gget_info(gid, &info) < 0 { throw error(path, "cannot list group") }
            var names: [String] = []
            for i in 0..<info.nlinks {
                let n = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, certify_H5P_DEFAULT())
                if n < 0 { throw error(path, "cannot read link name \(i)") }
                var buf = [CChar](repeating: 0, count: Int(n) + 1)
                H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, Int(n) + 1, certify_H5P_DEFAULT())
                names.append(String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return names
        }
    }

    /// All datasets below this group, as paths relative to it, depth first and sorted.
    ///
    /// Safe on any valid file: a group that is its own ancestor (a hard-link cycle such as
    /// `f['loop'] = f['/']`) is not entered again, links that lead nowhere (dangling soft or external
    /// links) are skipped, and a file whose shared groups would expand to more than `limit` paths is
    /// an error instead of an endless walk. A dataset reachable under two names is listed under both.
    public func datasetPaths(limit: Int = 1_000_000) throws -> [String] {
        var out: [String] = []
        var ancestors: Set<ObjectKey> = []
        var visited = 0
        if let k = objectKey(path) { ancestors.insert(k) }
        try walk(self, prefix: "", ancestors: &ancestors, visited: &visited, limit: limit, out: &out)
        return out
    }

    /// Links below this group (relative paths) that lead nowhere: dangling soft links and
    /// unresolvable external links.
    public func danglingLinks() throws -> [String] {
        var out: [String] = []
        for name in try children() {
            let child = absolute(name)
            if objectKey(child) == nil { out.append(name); continue }
            if (try? kind(child)) == .group, !isCycle(child) {
                out += try Group(file: file, path: child, handle: nil).danglingLinks().map { name + "/" + $0 }
            }
        }
        return out
    }

    private func isCycle(_ abs: String) -> Bool {
        // A group whose key equals one of its ancestors' (checked along the path).
        guard let k = objectKey(abs) else { return false }
        var prefix = ""
        let parts = abs.split(separator: "/")
        for part in parts.dropLast() {
            prefix += "/" + part
            if objectKey(prefix) == k { return true }
        }
        return objectKey("/") == k
    }

    struct ObjectKey: Hashable { var fileno: UInt, a: UInt64, b: UInt64 }

    /// The identity (file number and address) of the object at an absolute path; nil when the path
    /// does not lead to an object.
    func objectKey(_ abs: String) -> ObjectKey? {
        locked {
            var fileno: UInt = 0
            var a: UInt64 = 0, b: UInt64 = 0
            let rc = withUnsafeMutablePointer(to: &a) { pa in
                withUnsafeMutablePointer(to: &b) { pb in
                    pa.withMemoryRebound(to: CUnsignedLongLong.self, capacity: 1) { ra in
                        pb.withMemoryRebound(to: CUnsignedLongLong.self, capacity: 1) { rb in
                            certify_object_key(file.handle.id, abs, &fileno, ra, rb)
                        }
                    }
                }
            }
            return rc < 0 ? nil : ObjectKey(fileno: fileno, a: a, b: b)
        }
    }

    private func walk(_ g: Group, prefix: String, ancestors: inout Set<ObjectKey>, visited: inout Int, limit: Int,
                      out: inout [String]) throws {
        for name in try g.children() {
            visited += 1
            if visited > limit {
                throw error(path, "more than \(limit) links below this group (shared groups expand too far); not traversed")
            }
            let child = g.absolute(name)
            guard let key = objectKey(child) else { continue }   // a dangling link: nothing to read
            let rel = prefix.isEmpty ? name : prefix + "/" + name
            switch try kind(child) {
            case .dataset: out.append(rel)
            case .group:
                guard !ancestors.contains(key) else { continue }   // a hard-link cycle back to an ancestor
                ancestors.insert(key)
                defer { ancestors.remove(key) }
                try walk(Group(file: file, path: child, handle: nil), prefix: rel, ancestors: &ancestors, visited: &visited,
                         limit: limit, out: &out)
            case .other: break
            }
        }
    }

    /// Creates a group, with intermediate groups; returns the existing one if present.
    @discardableResult
    public func createGroup(_ rel: String) throws -> Group {
        let abs = absolute(rel)
        if contains(abs) { return try group(abs) }
        try locked {
            let lcpl = H5Pcreate(certify_H5P_LINK_CREATE())
            defer { H5Pclose(lcpl) }
            H5Pset_create_intermediate_group(lcpl, 1)
            let gid = H5Gcreate2(file.handle.id, abs, lcpl, certify_H5P_DEFAULT(), certify_H5P_DEFAULT())
            if gid < 0 { throw error(abs, "cannot create group (is the file open read-only?)") }
            H5Gclose(gid)
        }
        return Group(file: file, path: abs, handle: nil)
    }

    /// Creates (or replaces) a dataset of the given shape. `data.count` must equal the product of `shape`.
    /// `chunkRows` > 0 stores it chunked along the first axis (used by large benchmark files).
    @discardableResult
    public func write(_ rel: String, _ data: ArrayData, shape: [Int], chunkRows: Int = 0) throws -> Dataset {
        let abs = absolute(rel)
        let n = shape.reduce(1, *)
        guard n == data.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw error(abs, "data has \(data.count) elements but shape \(shape) needs \(n)")
        }
        if contains(abs) {
            try locked { if H5Ldelete(file.handle.id, abs, certify_H5P_DEFAULT()) < 0 { throw error(abs, "cannot replace") } }
        }
        return try locked {
            var dims = shape.map { hsize_t($0) }
            let space = shape.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(shape.count), &dims, nil)
            defer { H5Sclose(space) }
            var ownedType: hid_t = -1
            let type: hid_t
            switch data {
            case .bool: ownedType = makeBoolType(); type = ownedType
            case .string: ownedType = makeVarStringType(); type = ownedType
            default: type = nativeType(data.dtype)
            }
            defer { if ownedType >= 0 { H5Tclose(ownedType) } }
            let lcpl = H5Pcreate(certify_H5P_LINK_CREATE())
            defer { H5Pclose(lcpl) }
            H5Pset_create_intermediate_group(lcpl, 1)
            let dcpl = H5Pcreate(certify_H5P_DATASET_CREATE())
            defer { H5Pclose(dcpl) }
            if chunkRows > 0, !shape.isEmpty, shape[0] > 0 {
                var chunk = dims
                chunk[0] = hsize_t(min(chunkRows, shape[0]))
                H5Pset_chunk(dcpl, Int32(chunk.count), &chunk)
            }
            let did = H5Dcreate2(file.handle.id, abs, type, space, lcpl, dcpl, certify_H5P_DEFAULT())
            if did < 0 { throw error(abs, "cannot create dataset (is the file open read-only?)") }
            defer { H5Dclose(did) }
            let status: herr_t
            switch data {
            case .float64(let v): status = v.withUnsafeBytes { H5Dwrite(did, type, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
            case .float32(let v): status = v.withUnsafeBytes { H5Dwrite(did, type, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
            case .int64(let v): status = v.withUnsafeBytes { H5Dwrite(did, type, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
            case .int32(let v): status = v.withUnsafeBytes { H5Dwrite(did, type, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
            case .uint8(let v): status = v.withUnsafeBytes { H5Dwrite(did, type, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
            case .int8(let v): status = v.withUnsafeBytes { H5Dwrite(did, type, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
            case .bool(let v):
                let b = v.map { Int8($0 ? 1 : 0) }
                status = b.withUnsafeBytes { H5Dwrite(did, type, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
            case .string(let v):
                let cstrs = v.map { strdup($0) }
                defer { cstrs.forEach { free($0) } }
                status = cstrs.withUnsafeBytes { H5Dwrite(did, type, certify_H5S_ALL(), certify_H5S_ALL(), certify_H5P_DEFAULT(), $0.baseAddress) }
            }
            if status < 0 { throw error(abs, "write failed") }
            return Dataset(file: file, path: abs)
        }
    }

    /// Writes Float64 data; a convenience for the common case.
    @discardableResult
    public func write(_ rel: String, doubles: [Double], shape: [Int]) throws -> Dataset {
        try write(rel, .float64(doubles), shape: shape)
    }

    /// Removes a child link (dataset or group).
    public func remove(_ rel: String) throws {
        let abs = absolute(rel)
        try locked { if H5Ldelete(file.handle.id, abs, certify_H5P_DEFAULT()) < 0 { throw error(abs, "cannot remove") } }
    }

    public var attributes: Attributes { Attributes(file: file, path: path) }
}
