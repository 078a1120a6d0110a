// The model classes of the paper's experiments: one- and two-hidden-layer ReLU MLPs (the theory's
// one-hidden-layer MLP, scripts/synth_models.py; the NeurIPS paper's MLPs on Fashion-MNIST / SVHN) and
// a small CNN. Initialisation is PyTorch's default for nn.Linear / nn.Conv2d: weights and biases
// U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5), drawn from Certify's RNG, weight then bias,
// layer by layer.

import Foundation
import Ops
import Tensor

/// A classifier: logits [n, classes] from inputs [n, ...] with its parameters as tape variables.
public protocol Classifier: AnyObject, Sendable {
    var parameters: [Parameter] { get }
    var classes: Int { get }
    /// Logits for x ([n, ...]); `params[i]` is `parameters[i]` on the same tape.
    func logits(_ x: Var, _ params: [Var]) throws -> Var
}

extension Classifier {
    /// The parameters as leaves of `tape` (constants when their gradient is not taken).
    public func leaves(on tape: Tape) -> [Var] { parameters.map { $0.leaf(on: tape) } }

    /// Logits of a batch, no gradient.
    public func logits(_ x: Tensor) throws -> Tensor {
        let tape = Tape()
        return try logits(tape.leaf(x), leaves(on: tape)).value
    }

    /// Predicted classes (argmax, first index on ties), evaluated in batches.
    public func predict(_ x: Tensor, batchSize: Int = 1000) throws -> [Int] {
        let n = x.shape[0]
        var out: [Int] = []
        out.reserveCapacity(n)
        var s = 0
        while s < n {
            let e = Swift.min(n, s + batchSize)
            let z = try logits(x.slice(axis: 0, s..<e))
            let c = z.shape[1]
            for i in 0..<(e - s) {
                var best = 0
                for j in 1..<c where z.data[i * c + j] > z.data[i * c + best] { best = j }
                out.append(best)
            }
            s = e
        }
        return out
    }

    /// Accuracy on (x, y).
    public func accuracy(_ x: Tensor, _ y: [Int], batchSize: Int = 1000) throws -> Double {
        let p = try predict(x, batchSize: batchSize)
        return Double(zip(p, y).filter { $0 == $1 }.count) / Double(Swift.max(y.count, 1))
    }

    /// A deep copy (new parameters, same values, fresh optimizer state).
    public func copyValues(from other: any Classifier) throws {
        guard other.parameters.count == parameters.count else { throw ShapeError("Classifier.copy", "different architectures") }
        for (p, q) in zip(parameters, other.parameters) {
            guard p.value.shape == q.value.shape else { throw ShapeError("Classifier.copy", "\(p.name): \(p.value.shape) vs \(q.value.shape)") }
            p.value = q.value
        }
    }
}

/// U(−1/√fan_in, 1/√fan_in), PyTorch's default for Linear and Conv weights and biases.
func defaultInit(_ shape: [Int], fanIn: Int, rng: inout RNG) -> Tensor {
    let b = 1.0 / Double(fanIn).squareRoot()
    return rng.uniformTensor(shape, -b, b)
}

/// A ReLU MLP: Linear(D → h₁)–ReLU–…–Linear(h_L → classes). The input is flattened per example.
public final class MLP: Classifier, @unchecked Sendable {
    public let sizes: [Int]
    public let parameters: [Parameter]
    public var classes: Int { sizes.last! }

    /// `sizes` = [D, h₁, …, h_L, classes] (L = 1 or 2 in the paper).
    public init(sizes: [Int], rng: inout RNG) throws {
        guard sizes.count >= 2, sizes.allSatisfy({ $0 > 0 }) else { throw ShapeError("MLP", "layer sizes \(sizes) need ≥ 2 positive entries") }
        var weights = 0
        for l in 0..<(sizes.count - 1) {
            weights = try checkedAdd(weights, try checkedMul(sizes[l], sizes[l + 1], "MLP layer sizes \(sizes)"), "MLP layer sizes \(sizes)")
        }
        // Parameters, their gradients and optimiser state: a few copies of every weight.
        try Budget.require(elements: 4 * Double(weights), "an MLP of layer sizes \(sizes) (\(weights) weights)")
        self.sizes = sizes
        var ps: [Parameter] = []
        for l in 0..<(sizes.count - 1) {
            ps.append(Parameter("fc\(l + 1).weight", defaultInit([sizes[l + 1], sizes[l]], fanIn: sizes[l], rng: &rng)))
            ps.append(Parameter("fc\(l + 1).bias", defaultInit([sizes[l + 1]], fanIn: sizes[l], rng: &rng)))
        }
        parameters = ps
    }

    /// An MLP with given weights ([out, in]) and biases, e.g. a golden's fixed weights.
    public init(weights: [Tensor], biases: [Tensor]) throws {
        guard !weights.isEmpty, weights.count == biases.count else { throw ShapeError("MLP", "\(weights.count) weights, \(biases.count) biases") }
        var sizes = [weights[0].shape.count == 2 ? weights[0].shape[1] : 0]
        for (l, (w, b)) in zip(weights, biases).enumerated() {
            guard w.rank == 2, w.shape[1] == sizes.last!, b.shape == [w.shape[0]] else {
                throw ShapeError("MLP", "layer \(l + 1): weight \(w.shape) / bias \(b.shape) do not chain from width \(sizes.last!)")
            }
            sizes.append(w.shape[0])
        }
        self.sizes = sizes
        parameters = zip(weights, biases).enumerated().flatMap { l, wb in
            [Parameter("fc\(l + 1).weight", wb.0), Parameter("fc\(l + 1).bias", wb.1)]
        }
    }

    public func logits(_ x: Var, _ params: [Var]) throws -> Var {
        let n = x.shape.first ?? 0
        guard n > 0, x.value.count / n == sizes[0] else {
            throw ShapeError("MLP", "input \(x.shape) does not flatten to [n, \(sizes[0])]")
        }
        var h = x.shape.count == 2 ? x : try reshape(x, [n, sizes[0]])
        let layers = sizes.count - 1
        for l in 0..<layers {
            h = try linear(h, weight: params[2 * l], bias: params[2 * l + 1])
            if l < layers - 1 { h = relu(h) }
        }
        return h
    }
}

/// A small CNN for [n, H, W] (one channel) inputs: conv5×5(1→c₁, pad 2)–ReLU–maxpool2–
/// conv5×5(c₁→c₂, pad 2)–ReLU–maxpool2–Linear(c₂·⌊H/4⌋·⌊W/4⌋ → classes).
public final class SmallCNN: Classifier, @unchecked Sendable {
    public let height: Int, width: Int, channels: (Int, Int)
    public let classes: Int
    public let parameters: [Parameter]

    public init(height: Int, width: Int, channels: (Int, Int) = (8, 16), classes: Int, rng: inout RNG) throws {
        guard height >= 4, width >= 4, channels.0 > 0, channels.1 > 0, classes > 0 else {
            throw ShapeError("SmallCNN", "needs H, W ≥ 4 and positive channels/classes")
        }
        self.height = height
        self.width = width
        self.channels = channels
        self.classes = classes
        let (c1, c2) = channels
        let flat = c2 * (height / 4) * (width / 4)
        parameters = [
            Parameter("conv1.weight", defaultInit([c1, 1, 5, 5], fanIn: 25, rng: &rng)),
            Parameter("conv1.bias", defaultInit([c1], fanIn: 25, rng: &rng)),
            Parameter("conv2.weight", defaultInit([c2, c1, 5, 5], fanIn: c1 * 25, rng: &rng)),
            Parameter("conv2.bias", defaultInit([c2], fanIn: c1 * 25, rng: &rng)),
            Parameter("fc.weight", defaultInit([classes, flat], fanIn: flat, rng: &rng)),
            Parameter("fc.bias", defaultInit([classes], fanIn: flat, rng: &rng)),
        ]
    }

    public func logits(_ x: Var, _ params: [Var]) throws -> Var {
        let n = x.shape.first ?? 0
        guard n > 0, x.value.count == n * height * width else {
            throw ShapeError("SmallCNN", "input \(x.shape) is not [n, \(height), \(width)]")
        }
        var h = try reshape(x, [n, 1, height, width])
        h = try maxPool2d(relu(conv2d(h, weight: params[0], bias: params[1], padding: [2, 2])), kernelSize: [2, 2])
        h = try maxPool2d(relu(conv2d(h, weight: params[2], bias: params[3], padding: [2, 2])), kernelSize: [2, 2])
        h = try reshape(h, [n, -1])
        return try linear(h, weight: params[4], bias: params[5])
    }
}
