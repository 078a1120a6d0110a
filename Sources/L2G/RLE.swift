// COCO run-length encoding (RLE) of binary masks, written from the format's description: a mask of
// height H and width W is read in column-major order (down each column, left to right) as alternating
// runs of 0s and 1s, starting with a (possibly empty) run of 0s. The compressed string form stores each
// count (from the third on, as the difference to the count two before) in 5-bit groups, low group first,
// each group as a character 48 + (group | 0x20 if more groups follow), bit 0x10 of the last group
// being the sign.

/// A binary mask as COCO RLE counts (column-major, starting with a run of zeros).
public struct RLE: Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var counts: [Int]

    /// Problems with an RLE, described in one line (the caller adds the file and entry).
    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// Counts that must be non-negative and sum to height × width.
    public init(height: Int, width: Int, counts: [Int]) throws {
        guard height >= 0, width >= 0, height <= 1 << 20, width <= 1 << 20 else {
            throw FormatError("size [\(height), \(width)] must be two non-negative integers (at most 2^20)")
        }
        var total = 0
        for (i, c) in counts.enumerated() {
            guard c >= 0 else { throw FormatError("count \(i) is negative (\(c))") }
            total += c
            guard total <= height * width else { break }
        }
        guard total == height * width else {
            throw FormatError("counts sum to \(total), expected height × width = \(height * width)")
        }
        self.height = height
        self.width = width
        self.counts = counts
    }

    /// The all-zero mask.
    public static func empty(height: Int, width: Int) -> RLE {
        RLE(unchecked: height, width, [height * width])
    }

    init(unchecked h: Int, _ w: Int, _ c: [Int]) {
        height = h
        width = w
        counts = c
    }

    /// Encodes a dense mask given row-major (mask[y * width + x] ≠ 0 is foreground).
    public init(denseRowMajor mask: [Bool], height: Int, width: Int) {
        var counts: [Int] = []
        var current = false, run = 0
        for x in 0..<width {
            for y in 0..<height {
                let v = mask[y * width + x]
                if v != current {
                    counts.append(run)
                    run = 0
                    current = v
                }
                run += 1
            }
        }
        counts.append(run)
        self.init(unchecked: height, width, counts)
    }

    /// The dense mask, row-major.
    public func denseRowMajor() -> [Bool] {
        var out = [Bool](repeating: false, count: height * width)
        var p = 0, v = false
        for c in counts {
            if v {
                for q in p..<(p + c) { out[(q % height) * width + q / height] = true }
            }
            p += c
            v.toggle()
        }
        return out
    }

    /// Number of foreground pixels.
    public var area: Int {
        var a = 0
        var i = 1
        while i < counts.count { a += counts[i]; i += 2 }
        return a
    }

    /// |a ∩ b| of two masks of the same size (a walk over both run lists).
    public static func intersectionArea(_ a: RLE, _ b: RLE) -> Int {
        var ia = 0, ib = 0
        var ra = a.counts.first ?? 0, rb = b.counts.first ?? 0   // remaining length of the current runs
        var va = false, vb = false
        var inter = 0
        let n = a.height * a.width
        var pos = 0
        while pos < n {
            while ra == 0 && ia + 1 < a.counts.count { ia += 1; ra = a.counts[ia]; va.toggle() }
            while rb == 0 && ib + 1 < b.counts.count { ib += 1; rb = b.counts[ib]; vb.toggle() }
            let step = Swift.min(ra, rb)
            if step == 0 { break }
            if va && vb { inter += step }
            ra -= step
            rb -= step
            pos += step
        }
        return inter
    }

    // MARK: - The compressed string form

    /// Decodes COCO's compressed counts string (the `counts` of a compressed RLE).
    public init(compressed s: String, height: Int, width: Int) throws {
        var counts: [Int] = []
        let bytes = Array(s.utf8)
        var p = 0
        while p < bytes.count {
            var x = 0, k = 0, more = true
            while more {
                guard p < bytes.count else { throw FormatError("the string ends inside a count (count \(counts.count))") }
                let raw = Int(bytes[p])
                guard raw >= 48, raw < 48 + 64 else {
                    throw FormatError("character \(p) ('\(UnicodeScalar(UInt8(raw)))') is outside the RLE alphabet (ASCII 48–111)")
                }
                guard k < 12 else { throw FormatError("count \(counts.count) is too long (more than 12 groups)") }
                let c = raw - 48
                x |= (c & 0x1f) << (5 * k)
                more = c & 0x20 != 0
                p += 1
                k += 1
                if !more && c & 0x10 != 0 { x |= -1 << (5 * k) }
            }
            if counts.count > 2 { x += counts[counts.count - 2] }
            counts.append(x)
        }
        try self.init(height: height, width: width, counts: counts)
    }

    /// The compressed counts string.
    public var compressedString: String {
        var out: [UInt8] = []
        for i in counts.indices {
            var x = counts[i]
            if i > 2 { x -= counts[i - 2] }
            var more = true
            while more {
                var c = x & 0x1f
                x >>= 5
                more = c & 0x10 != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                out.append(UInt8(c + 48))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
