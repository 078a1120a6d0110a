// NRR-DD: every nrrdd.* protocol against its PyTorch golden (values, gradient checks, properties),
// and a broken implementation that must fail.

import Certification
import CertifyMethods
import Foundation
import HDF5
import Ops
import Tensor
import Testing
@testable import NRRDD

let nrrddSet: ProtocolSet = {
    registerAll()
    return try! ProtocolSet.load(root: packageRoot())
}()

@Suite struct NRRDDCertification {
    @Test(arguments: ["nrrdd.cam", "nrrdd.selection", "nrrdd.stitching", "nrrdd.refinement", "nrrdd.dbr", "nrrdd.relabel"])
    func certified(_ id: String) throws {
        let p = try nrrddSet.protocolFor(id)
        let r = Certifier.certify(p, in: nrrddSet)
        for f in r.failures { Issue.record("\(id) \(f.kind.rawValue) \(f.name): \(f.message)") }
        let passed = r.passed
        #expect(passed, "\(id): \(r.status)")
        print("\(id): \(r.status), worst relative error \(r.worstRelError), checks \(r.checks.count)")
    }

    /// A one-character change in the mathematics (ε − C → C − ε in the mask) must fail the golden.
    @Test func brokenMaskFails() throws {
        let p = try nrrddSet.protocolFor("nrrdd.refinement")
        let good = try Registry.shared.method("nrrdd.refinement")
        let broken = Method("nrrdd.refinement", properties: good.properties) { ctx in
            var out = try good.build(ctx)
            let m = out["mask"]!.value
            out["mask"] = ctx.constant(m.map { $0 > 0 ? $0 * (1 + 1e-9) : $0 })
            return out
        }
        let r = Certifier.certify(p, in: nrrddSet, options: { var o = CertifyOptions(); o.gradientChecks = false; o.properties = false; return o }(),
                                  implementation: broken)
        #expect(!r.passed)
    }

    /// The storage arithmetic of the paper's ImageNet-1k example, by function.
    @Test func storageOfImageNet() {
        let s = DistanceBasedRepresentative.storage(instances: 200_000, epochs: 300, classes: 1000, bytesPerNumber: 2)
        #expect(s.softLabels / 1e9 == 120)
        #expect(s.dbr / 1e9 == 0.24)
    }
}

@Suite struct DistilledSetFiles {
    func path(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nrrdd-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    func write(_ name: String, images: Tensor?, labels: [Double]?) throws -> String {
        let p = path(name)
        let f = try File.create(p)
        if let images { _ = try f.root.write("images", .float64(images.data), shape: images.shape) }
        if let labels { _ = try f.root.write("labels", .float64(labels), shape: [labels.count]) }
        return p
    }

    @Test func roundTrip() throws {
        var rng = RNG(seed: 1)
        let x = rng.normalTensor([3, 1, 28, 28])
        var prng = RNG(seed: 2)
        let plan = try Distillation.relabelPlan(count: 3, height: 28, width: 28, epochs: 2, batchSize: 2, rng: &prng)
        let targets = plan.map { $0.map { Tensor(unchecked: [$0.indices.count, 2], [Double](repeating: 0.5, count: 2 * $0.indices.count)) } }
        let p = path("set.h5")
        try DistilledSetFile.write(p, images: x, labels: [0, 1, 2], plan: plan, targets: targets, kind: .dbr, method: "nrrdd",
                                   config: DistillConfig(), provenance: ["command": "test"])
        let r = try DistilledSetFile.read(p)
        #expect(r.images == x && r.labels == [0, 1, 2])
        let f = try File.open(p)
        #expect(try f.dataset("dbr/distances").shape == [4, 2, 2])
        #expect(f.attributes["method"]?.stringValue == "nrrdd")
    }

    /// Missing labels, a wrong image shape, NaN pixels and labels outside 0–9: one error naming the file and object.
    @Test func badSetsRejected() throws {
        var rng = RNG(seed: 3)
        let good = rng.normalTensor([2, 1, 28, 28])
        var nan = good
        nan.data[5] = .nan
        let cases: [(String, Tensor?, [Double]?, String)] = [
            ("nolabels.h5", good, nil, "/labels"), ("shape.h5", rng.normalTensor([2, 3, 28, 28]), [0, 1], "[n, 1, 28, 28]"),
            ("nan.h5", nan, [0, 1], "finite"), ("badlabel.h5", good, [0, 10], "class index"), ("count.h5", good, [0], "one per image"),
        ]
        for (name, images, labels, needle) in cases {
            let p = try write(name, images: images, labels: labels)
            do {
                _ = try DistilledSetFile.read(p)
                Issue.record("\(name) was accepted")
            } catch {
                #expect("\(error)".contains(p) && "\(error)".contains(needle), "\(name): \(error)")
            }
        }
    }

    /// ε outside [0, 1], τ ≤ 0 and ipc·factor² above the pool are refused before any work.
    @Test func badConfigRejected() {
        for edit in [{ (c: inout DistillConfig) in c.epsilon = 1.5 }, { $0.dbrTau = 0 }, { $0.kdTau = -1 }, { $0.ipc = 20; $0.mipc = 60 }] {
            var c = DistillConfig()
            edit(&c)
            #expect(throws: NRRDDError.self) { try c.validate() }
        }
    }
}

@Suite struct NRRDDReproduction {
    /// docs/nrrdd/REPRODUCTION.md's tables are what docs/nrrdd/tables.py makes from the committed results.
    @Test func tablesAreGenerated() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [packageRoot() + "/docs/nrrdd/tables.py", "--check"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
    }
}

/// The box sampler's rules against torchvision's RandomResizedCrop.get_params: torchvision draws with torch's RNG
/// (seeded), every draw is recorded (the scale draw, the aspect ratio after exp, the offsets), and the Swift rules
/// replay them. Exact wherever the draws are given; the draws themselves come from Tensor's RNG in Certify.
@Suite struct CropBoxesAgainstTorchvision {
    static let script = """
        import json, sys, torch, torchvision.transforms as T
        out = []
        for (H, W, s0, s1, r0, r1, seed) in json.loads(sys.argv[1]):
            torch.manual_seed(seed)
            rec = []
            real = (torch.empty, torch.exp, torch.randint)
            class Empty:
                def __init__(self, *a, **k): self.t = real[0](*a, **k)
                def uniform_(self, lo, hi):
                    r = self.t.uniform_(lo, hi); rec.append(("u", r.item())); return r
            def exp(x):
                y = real[1](x); rec.append(("e", y.item())); return y
            def randint(*a, **k):
                y = real[2](*a, **k); rec.append(("i", y.item())); return y
            torch.empty, torch.exp, torch.randint = Empty, exp, randint
            try:
                box = T.RandomResizedCrop.get_params(torch.zeros(1, H, W), scale=(s0, s1), ratio=(r0, r1))
            finally:
                torch.empty, torch.exp, torch.randint = real
            out.append({"box": list(box), "rec": rec})
        print(json.dumps(out))
        """

    @Test func replayEqualsGetParams() throws {
        var cases: [[Double]] = []
        var rng = RNG(seed: 13)
        for k in 0..<60 {
            let (h, w) = (1 + rng.int(below: 40), 1 + rng.int(below: 40))
            let ratio: (Double, Double) = k % 3 == 0 ? (1, 1) : k % 3 == 1 ? (0.75, 4.0 / 3) : (2, 5)   // (2, 5): many fallbacks
            let scale: (Double, Double) = k % 4 == 0 ? (0.9, 1) : (0.08, 1)
            cases.append([Double(h), Double(w), scale.0, scale.1, ratio.0, ratio.1, Double(k)])
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: cases), as: UTF8.self)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", CropBoxesAgainstTorchvision.script, json]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "python3 with torchvision (Debian's python3-torchvision) failed: \(errText)")
        let results = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        var fallbacks = 0
        for (c, r) in zip(cases, results) {
            let rec = r["rec"] as! [[Any]]
            var attempts: [(scaleDraw: Double, aspect: Double)] = [], ints: [Int] = []
            var pendingU: [Double] = []
            for e in rec {
                let kind = e[0] as! String, v = (e[1] as! NSNumber).doubleValue
                switch kind {
                case "u": pendingU.append(v)
                case "e": attempts.append((pendingU[pendingU.count - 2], v))
                default: ints.append(Int(v))
                }
            }
            if ints.isEmpty { fallbacks += 1 }
            let sampler = RandomResizedCropBoxes(scale: (c[2], c[3]), ratio: (c[4], c[5]))
            let box = try sampler.replay(height: Int(c[0]), width: Int(c[1]), attempts: attempts,
                                         offsets: ints.count == 2 ? (ints[0], ints[1]) : nil)
            let want = (r["box"] as! [NSNumber]).map(\.intValue)
            #expect([box.top, box.left, box.height, box.width] == want, "H \(c[0]), W \(c[1]), scale \(c[2])–\(c[3]), ratio \(c[4])–\(c[5]), seed \(c[6])")
        }
        #expect(fallbacks > 0, "no case exercised the centre fallback")
    }
}
