// Issue 10 §2: `certify eval` refuses what it does not implement. Every input, param or cotangent
// the protocol does not declare is an error naming it (exit 2), unless --allow-extra; param values
// the goldens do not certify are reported.

import Certification
import Foundation
import HDF5
import Testing

/// A copy of `id`'s golden whose first case gets one more dataset; returns (path, case name).
func withExtra(_ id: String, _ section: String, _ name: String, _ value: ArrayData, shape: [Int] = []) throws -> (String, String) {
    let set = try ProtocolSet.load(root: root)
    let golden = set.goldenPath(try set.protocolFor(id))
    var first = ""
    let path = try editedCopy("extra-\(id)-\(name).h5", of: golden) { f in
        first = try #require(try caseNames(in: f).first)
        try f.root.write("\(first)/\(section)/\(name)", value, shape: shape)
    }
    return (path, first)
}

@Suite(.serialized) struct EvalStrictness {
    /// The hidden cases of the issue, and a misspelled optional flag: each is refused with one line
    /// naming the dataset and the declared names, and no output is written.
    @Test func undeclaredDatasetsAreRefused() throws {
        let cases: [(String, String, String, ArrayData, [Int], String)] = [
            ("core.conv2d", "params", "padding_mode", .string(["circular"]), [1], "declared params: weight, bias, has_bias, stride"),
            ("core.interpolate_bilinear", "params", "antialias", .bool([true]), [], "declared params: size, align_corners"),
            ("core.max_pool2d", "params", "dilation", .int64([2, 2]), [2], "declared params: kernel_size"),
            ("core.avg_pool2d", "params", "ceil_mode", .bool([true]), [], "count_include_pad"),
            ("core.avg_pool2d", "params", "divisor_override", .int64([3]), [], "count_include_pad"),
            ("core.cross_entropy", "params", "label_smoothing", .float64([0.1]), [], "reduction_sum"),
            ("core.cross_entropy", "params", "ignore_index", .int64([1]), [], "reduction_sum"),
            ("core.multihead_attention", "inputs", "attn_mask", .bool([false, true, false, false]), [2, 2], "declared inputs: query, key, value"),
            ("core.scaled_dot_product_attention", "params", "is_causal", .bool([true]), [], "has_mask"),
            ("core.kl_div", "params", "log_target", .bool([true]), [], "it declares no params"),
            ("core.smooth_l1_loss", "params", "reduction", .string(["sum"]), [1], "declared params: beta"),
            ("core.mse_loss", "params", "reduction", .string(["sum"]), [1], "it declares no params"),
            ("core.bce_with_logits", "params", "pos_weight", .float64([2]), [1], "it declares no params"),
            ("core.adam_step", "params", "amsgrad", .bool([true]), [], "weight_decay"),
            ("core.adam_step", "params", "maximize", .bool([true]), [], "weight_decay"),
            ("iadg.aiaw", "params", "divisr", .int64([1]), [], "did you mean 'divisor'? Otherwise remove it or pass --allow-extra"),
            ("core.softmax", "inputs", "extra", .float64([1]), [1], "declared inputs: x"),
            ("core.softmax", "cotangents", "z", .float64([1]), [1], "declared outputs: y"),
            ("core.adam_step", "cotangents", "param", .float64([1]), [1], "certifies no gradients"),
        ]
        // A declared param stored under inputs/ is not silently moved either.
        let (moved, mc) = try withExtra("core.softmax", "inputs", "axis", .int64([1]))
        let m = try certify("eval", "core.softmax", "--input", moved, "--output", tmp("strict-moved.h5"))
        #expect(m.status == 2 && m.err.contains("/\(mc)/inputs/axis: not declared by core.softmax as an input: it is declared under params/"), "\(m.err)")
        for (id, section, name, value, shape, needle) in cases {
            let (path, c) = try withExtra(id, section, name, value, shape: shape)
            let out = tmp("strict-out.h5")
            let r = try certify("eval", id, "--input", path, "--output", out)
            let line = "certify: error: \(path): /\(c)/\(section)/\(name): not declared by \(id) ("
            #expect(r.status == 2, "\(id) \(name): status \(r.status) \(r.err)")
            #expect(r.err.hasPrefix(line), "\(id) \(name): \(r.err)")
            #expect(r.err.contains(needle) && r.err.hasSuffix("remove it or pass --allow-extra\n"), "\(id) \(name): \(r.err)")
            #expect(r.err.split(separator: "\n").count == 1, "\(id) \(name): not one line: \(r.err)")
            #expect(!FileManager.default.fileExists(atPath: out), "\(id) \(name): output written")
        }
    }

    /// A protocol with many params lists ten and counts the rest.
    @Test func longDeclaredListsAreTruncated() throws {
        let (path, _) = try withExtra("iadg.network", "params", "w_dept", .float64([0.1]))
        let r = try certify("eval", "iadg.network", "--input", path, "--output", tmp("strict-net.h5"))
        #expect(r.status == 2 && r.err.contains(", … and ") && r.err.contains(" more") && r.err.contains("did you mean 'w_depth'?"), "\(r.err)")
        #expect(r.err.count < 1200, "\(r.err.count) characters")
    }

    /// --allow-extra ignores them with a warning that lists them; the result is the plain op's.
    @Test func allowExtraWarnsAndIgnores() throws {
        let set = try ProtocolSet.load(root: root)
        let golden = set.goldenPath(try set.protocolFor("core.conv2d"))
        var first = ""
        let path = try editedCopy("extra-allow.h5", of: golden) { f in
            first = try #require(try caseNames(in: f).first)
            try f.root.write("\(first)/params/padding_mode", .string(["circular"]), shape: [1])
            try f.root.write("\(first)/inputs/x2", .float64([1, 2]), shape: [2])
        }
        let out = tmp("allow-out.h5")
        let r = try certify("eval", "core.conv2d", "--input", path, "--output", out, "--allow-extra")
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("certify: warning:") && r.err.contains("ignored 2 dataset(s) not declared by core.conv2d"), "\(r.err)")
        #expect(r.err.contains("/\(first)/params/padding_mode") && r.err.contains("/\(first)/inputs/x2"), "\(r.err)")
        #expect(try certify("diff", out, golden).status == 0)
    }

    /// A missing param is reported under params/ (it used to say inputs/).
    @Test func missingParamIsReportedUnderParams() throws {
        let path = try editedCopy("noaxis.h5") { f in try f.root.remove("rows/params/axis") }
        let r = try certify("eval", "core.softmax", "--input", path, "--output", tmp("noaxis-out.h5"))
        #expect(r.status == 2 && r.err.contains("/rows/params/axis: missing dataset"), "\(r.err)")
    }

    /// A declared but uncertified value: `show` says so; eval warns and marks the case and the file.
    @Test func uncertifiedValuesAreReported() throws {
        let s = try certify("show", "core.max_pool2d")
        #expect(s.out.contains("ceil_mode: bool scalar (optional) (default false) (declared, not certified: ceil_mode = true)"), "\(s.out)")
        let set = try ProtocolSet.load(root: root)
        let golden = set.goldenPath(try set.protocolFor("core.max_pool2d"))
        let plain = tmp("pool-plain.h5")
        let p = try certify("eval", "core.max_pool2d", "--input", golden, "--output", plain)
        #expect(p.status == 0 && !p.err.contains("warning"), "\(p.err)")
        #expect(try File.open(plain).attributes["uncertified"] == nil)
        let path = try editedCopy("ceil.h5", of: golden) { f in try f.root.write("k2_s2/params/ceil_mode", .bool([true]), shape: []) }
        let out = tmp("pool-ceil.h5")
        let r = try certify("eval", "core.max_pool2d", "--input", path, "--output", out)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("certify: warning:") && r.err.contains("/k2_s2: ceil_mode = true: declared by core.max_pool2d but not certified"), "\(r.err)")
        let f = try File.open(out)
        #expect(try f.group("k2_s2").attributes["uncertified"]?.stringValue == "ceil_mode = true")
        #expect(try f.group("k3_s2_p1").attributes["uncertified"] == nil)
        #expect(f.attributes["uncertified"]?.stringValue == "k2_s2: ceil_mode = true")
    }
}
