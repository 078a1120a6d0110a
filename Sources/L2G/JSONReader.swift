// A small JSON reader for `certify vis-eval`: Foundation's JSONSerialization builds an NSNumber per number, which makes a
// YouTube-VIS file with hundreds of thousands of RLE counts slow to read. This reader returns plain Swift values: [String: Any],
// [Any], Double, String, Bool and NSNull. Python's json writes NaN, Infinity and -Infinity; they are read as marker strings so
// that the entry holding one can be named.

import Foundation

struct JSONReadError: Error, CustomStringConvertible {
    var offset: Int
    var message: String
    var description: String { "\(message) at byte \(offset)" }
}

struct JSONReader {
    let b: [UInt8]
    var i = 0

    static func parse(_ data: Data) throws -> Any {
        var r = JSONReader(b: [UInt8](data))
        r.skip()
        let v = try r.value()
        r.skip()
        guard r.i == r.b.count else { throw JSONReadError(offset: r.i, message: "unexpected text after the JSON value") }
        return v
    }

    mutating func skip() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 }
    }

    mutating func literal(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard i + u.count <= b.count, Array(b[i..<(i + u.count)]) == u else { return false }
        i += u.count
        return true
    }

    mutating func value() throws -> Any {
        guard i < b.count else { throw JSONReadError(offset: i, message: "unexpected end of the file") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var o: [String: Any] = [:]
            skip()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return o }
            while true {
                skip()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw JSONReadError(offset: i, message: "expected a key string") }
                let k = try string()
                skip()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw JSONReadError(offset: i, message: "expected ':'") }
                i += 1
                skip()
                o[k] = try value()
                skip()
                guard i < b.count else { throw JSONReadError(offset: i, message: "unexpected end inside an object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return o }
                throw JSONReadError(offset: i, message: "expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [Any] = []
            skip()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return a }
            // A list of plain numbers (RLE counts, areas) becomes [Double] without boxing each element.
            if i < b.count, (b[i] >= 0x30 && b[i] <= 0x39) || (b[i] == UInt8(ascii: "-") && i + 1 < b.count && b[i + 1] != UInt8(ascii: "I")) {
                var nums: [Double] = []
                while true {
                    skip()
                    guard i < b.count, (b[i] >= 0x30 && b[i] <= 0x39) || b[i] == UInt8(ascii: "-") else { break }
                    nums.append(try number())
                    skip()
                    guard i < b.count else { throw JSONReadError(offset: i, message: "unexpected end inside a list") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return nums }
                    throw JSONReadError(offset: i, message: "expected ',' or ']'")
                }
                a = nums.map { $0 as Any }   // a non-number follows: continue as a general list
            }
            while true {
                skip()
                a.append(try value())
                skip()
                guard i < b.count else { throw JSONReadError(offset: i, message: "unexpected end inside a list") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return a }
                throw JSONReadError(offset: i, message: "expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"): if literal("true") { return true }
        case UInt8(ascii: "f"): if literal("false") { return false }
        case UInt8(ascii: "n"): if literal("null") { return NSNull() }
        case UInt8(ascii: "N"): if literal("NaN") { return nonFiniteMarker + "NaN" }
        case UInt8(ascii: "I"): if literal("Infinity") { return nonFiniteMarker + "Infinity" }
        default:
            if b[i] == UInt8(ascii: "-"), literal("-Infinity") { return nonFiniteMarker + "-Infinity" }
            return try number()
        }
        throw JSONReadError(offset: i, message: "unexpected character '\(UnicodeScalar(b[i]))'")
    }

    mutating func number() throws -> Double {
        let start = i
        var integer = true
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        var value = 0.0, digits = 0
        while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
            value = value * 10 + Double(b[i] - 0x30)
            digits += 1
            i += 1
        }
        guard digits > 0 else { throw JSONReadError(offset: start, message: "unexpected character '\(UnicodeScalar(b[start]))'") }
        while i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")
            || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") || (b[i] >= 0x30 && b[i] <= 0x39) {
            integer = false
            i += 1
        }
        // Short integers are exact as accumulated; anything else goes through strtod (correctly rounded).
        if integer && digits <= 15 { return b[start] == UInt8(ascii: "-") ? -value : value }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        guard let d = Double(text) else { throw JSONReadError(offset: start, message: "malformed number '\(text)'") }
        return d
    }

    mutating func string() throws -> String {
        i += 1
        let start = i
        var simple = true
        while i < b.count, b[i] != UInt8(ascii: "\"") {
            if b[i] == UInt8(ascii: "\\") { simple = false; i += 2; continue }
            if b[i] < 0x20 { throw JSONReadError(offset: i, message: "control character inside a string") }
            i += 1
        }
        guard i < b.count else { throw JSONReadError(offset: start, message: "unterminated string") }
        let raw = b[start..<i]
        i += 1
        if simple { return String(decoding: raw, as: UTF8.self) }
        // Escapes: let Foundation decode the quoted string.
        var quoted: [UInt8] = [UInt8(ascii: "\"")]
        quoted += raw
        quoted.append(UInt8(ascii: "\""))
        guard let s = try? JSONSerialization.jsonObject(with: Data(quoted), options: [.fragmentsAllowed]) as? String else {
            throw JSONReadError(offset: start, message: "invalid escape sequence in a string")
        }
        return s
    }
}
