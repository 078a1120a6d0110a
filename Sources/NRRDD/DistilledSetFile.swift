// The distilled-set file `certify distill` writes and evaluates: /images (normalised Fashion-MNIST space),
// /labels, the relabel plan (/relabel/*) and the stored labels (/dbr/distances or /soft/probabilities),
// with provenance attributes; written atomically through SafeOutput, read with every value checked.

import Certification
import Foundation
import HDF5
import Tensor

/// The distilled-set file: images, labels, the relabel plan and the stored labels, with provenance.
public enum DistilledSetFile {
    public static func write(_ path: String, images: Tensor, labels: [Int], plan: [[RelabelStep]], targets: [[Tensor]], kind: LabelKind, method: String,
                      config: DistillConfig, provenance: [String: String]) throws {
        let steps = plan.flatMap { $0 }, flatTargets = targets.flatMap { $0 }
        let b = steps.map(\.indices.count).max() ?? 0
        func padded(_ f: (RelabelStep) -> [Int]) -> [Int64] { steps.flatMap { s in f(s).map(Int64.init) + [Int64](repeating: -1, count: b - f(s).count) } }
        try SafeOutput.write(path) { tmp in
            let f = try File.create(tmp)
            let a = f.attributes
            try a.write("method", .string(method))
            try a.write("labels_kind", .string(kind.rawValue))
            try a.write("generator", .string("certify distill (Certify NRRDD)"))
            try a.write("pixel_normalisation", .string("(x/255 − \(FashionMNIST.mean))/\(FashionMNIST.std)"))
            try a.write("stored_label_numbers", .int(Int64(Distillation.storedNumbers(kind, instances: labels.count, epochs: plan.count))))
            for (k, v) in provenance { try a.write(k, .string(v)) }
            for (k, v) in config.summary { try a.write("config_" + k, .string(v)) }
            try f.root.write("images", .float64(images.data), shape: images.shape)
            try f.root.write("labels", .int64(labels.map(Int64.init)), shape: [labels.count])
            try f.root.write("relabel/indices", .int64(padded(\.indices)), shape: [steps.count, b])
            try f.root.write("relabel/partners", .int64(padded(\.partners)), shape: [steps.count, b])
            try f.root.write("relabel/flips", .int64(padded { $0.flips.map { $0 ? 1 : 0 } }), shape: [steps.count, b])
            try f.root.write("relabel/boxes", .int64(steps.flatMap { [$0.box.x1, $0.box.y1, $0.box.x2, $0.box.y2].map(Int64.init) }), shape: [steps.count, 4])
            try f.root.write("relabel/steps_per_epoch", .int64(plan.map { Int64($0.count) }), shape: [plan.count])
            switch kind {
            case .dbr:
                try f.root.write("dbr/distances", .float64(zip(steps, flatTargets).flatMap { s, t in t.data + [Double](repeating: .nan, count: 2 * (b - s.indices.count)) }),
                                 shape: [steps.count, b, 2])
            case .soft:
                try f.root.write("soft/probabilities", .float64(zip(steps, flatTargets).flatMap { s, t in t.data + [Double](repeating: .nan, count: 10 * (b - s.indices.count)) }),
                                 shape: [steps.count, b, 10])
            case .onehot: break
            }
        }
    }

    /// Reads /images [n, 1, 28, 28] and /labels [n] (classes 0–9), every value checked.
    public static func read(_ path: String) throws -> (images: Tensor, labels: [Int]) {
        let f = try File.open(path)
        for name in ["images", "labels"] where !f.root.isDataset(name) {
            throw InputError(file: path, object: "/\(name)", "missing dataset (a distilled set needs /images [n, 1, 28, 28] and /labels [n])")
        }
        let ids = try f.dataset("images")
        let shape = try ids.shape
        guard shape.count == 4, shape[0] >= 1, shape[1] == 1, shape[2] == 28, shape[3] == 28 else {
            throw InputError(file: path, object: "/images", "expected shape [n, 1, 28, 28] (Fashion-MNIST, normalised), found \(shape)")
        }
        do { try Budget.require(shape: shape, "the images") } catch let e as ShapeError { throw InputError(file: path, object: "/images", e.description) }
        let pixels = try ids.readDoubles()
        if let i = pixels.firstIndex(where: { !$0.isFinite }) {
            throw InputError(file: path, object: "/images", "element \(i) is \(pixels[i]); expected finite pixels")
        }
        let lds = try f.dataset("labels")
        let lv = try lds.readDoubles()
        guard lv.count == shape[0] else { throw InputError(file: path, object: "/labels", "\(lv.count) labels for \(shape[0]) images; expected one per image") }
        let labels = try lv.enumerated().map { i, v -> Int in
            if let p = integerProblem(v, in: 0...9) { throw InputError(file: path, object: "/labels", "element \(i): \(p) (a class index 0–9)") }
            return Int(v)
        }
        return (Tensor(unchecked: shape, pixels), labels)
    }
}

