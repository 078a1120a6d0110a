// Optimizers and gradient clipping with torch.optim semantics (single-tensor, foreach=False path):
// SGD (momentum, dampening, weight decay, Nesterov), Adam (coupled L2 decay), AdamW (decoupled
// decay), and torch.nn.utils.clip_grad_norm_.
//
// One implementation: the protocol step functions (`sgdStep`, `adamStep`, `adamwStep`) put the
// given state into a `Parameter` and run the very optimizer a training loop uses.
//
//   let w = Parameter("w", rng.normalTensor([4, 3]))
//   let opt = try Adam([ParameterGroup(params: [w], lr: 1e-2)])
//   for _ in 0..<100 {
//       let tape = Tape(); let wv = w.leaf(on: tape)
//       let loss = try mean(matmul(x, wv) * matmul(x, wv))
//       try opt.step(grads: tape.gradients(of: loss, wrt: [wv]))
//   }

import Foundation
import Tensor

/// A named trainable tensor and its optimizer state (as torch.optim keeps in `optimizer.state[p]`).
public final class Parameter: @unchecked Sendable, CustomStringConvertible {
    public let name: String
    public var value: Tensor
    /// SGD's momentum buffer (nil until the first step with momentum ≠ 0).
    public var momentumBuffer: Tensor?
    /// Adam's first and second moments (nil until the first step).
    public var expAvg: Tensor?
    public var expAvgSq: Tensor?
    /// Completed optimizer steps (torch's state['step']).
    public var step: Int = 0

    public init(_ name: String, _ value: Tensor) {
        self.name = name
        self.value = value
    }

    /// The value as a leaf on `tape`, for taking its gradient.
    public func leaf(on tape: Tape) -> Var { tape.leaf(value) }

    /// Forgets the optimizer state.
    public func resetState() {
        momentumBuffer = nil
        expAvg = nil
        expAvgSq = nil
        step = 0
    }

    public var description: String { "Parameter(\(name), shape: \(value.shape), step: \(step))" }
}

/// A group of parameters sharing a learning rate and weight decay (a torch param_group).
public struct ParameterGroup {
    public var params: [Parameter]
    public var lr: Double
    public var weightDecay: Double
    public init(params: [Parameter], lr: Double, weightDecay: Double = 0) {
        self.params = params
        self.lr = lr
        self.weightDecay = weightDecay
    }
}

/// An optimizer over parameter groups. `step(grads:)` takes one gradient per parameter, in the
/// order of `parameters` (groups in order, parameters within each group in order), or gradients by
/// parameter name. Each parameter is updated by `update(_:grad:group:)`, the one implementation.
public protocol Optimizer {
    var groups: [ParameterGroup] { get set }
    /// The update of one parameter from its gradient with its group's hyperparameters.
    func update(_ p: Parameter, grad: Tensor, group: ParameterGroup) throws
}

extension Optimizer {
    /// Every parameter, group by group.
    public var parameters: [Parameter] { groups.flatMap(\.params) }

    /// One update of every parameter; `grads[i]` belongs to `parameters[i]`.
    public func step(grads: [Tensor]) throws { try step(optionalGrads: grads) }

    /// Gradients by parameter name; a parameter without an entry is skipped (torch: grad is None).
    public func step(grads: [String: Tensor]) throws {
        let ps = parameters
        var byName: [String: Parameter] = [:]
        for p in ps {
            guard byName[p.name] == nil else { throw ShapeError("optimizer.step", "two parameters are named '\(p.name)'") }
            byName[p.name] = p
        }
        for k in grads.keys.sorted() where byName[k] == nil {
            throw ShapeError("optimizer.step", "gradient for '\(k)', which is not a parameter (parameters: \(ps.map(\.name)))")
        }
        try step(optionalGrads: ps.map { grads[$0.name] })
    }

    /// Checks every count and shape first, then updates each parameter that has a gradient.
    public func step(optionalGrads grads: [Tensor?]) throws {
        let ps = parameters
        guard grads.count == ps.count else {
            throw ShapeError("optimizer.step", "\(grads.count) gradients for \(ps.count) parameters")
        }
        for (p, g) in zip(ps, grads) {
            if let g, g.shape != p.value.shape {
                throw ShapeError("optimizer.step", "gradient of shape \(g.shape) for parameter '\(p.name)' of shape \(p.value.shape)")
            }
        }
        var i = 0
        for group in groups {
            for p in group.params {
                defer { i += 1 }
                if let g = grads[i] { try update(p, grad: g, group: group) }
            }
        }
    }
}

private func checkGroups(_ op: String, _ groups: [ParameterGroup]) throws {
    for (i, g) in groups.enumerated() {
        guard g.lr.isFinite, g.lr >= 0 else { throw ShapeError(op, "group \(i): invalid learning rate \(g.lr) (needs ≥ 0)") }
        guard g.weightDecay.isFinite, g.weightDecay >= 0 else {
            throw ShapeError(op, "group \(i): invalid weight_decay \(g.weightDecay) (needs ≥ 0)")
        }
    }
    var seen = Set<ObjectIdentifier>()
    for p in groups.flatMap(\.params) where !seen.insert(ObjectIdentifier(p)).inserted {
        throw ShapeError(op, "parameter '\(p.name)' appears in more than one place (torch: 'some parameters appear in more than one parameter group')")
    }
}

// MARK: - SGD

/// torch.optim.SGD: d = g + wd·p; with momentum μ: buf = d on the first step (a clone — dampening
/// does not apply), else buf = μ·buf + (1 − dampening)·d; d = d + μ·buf (Nesterov) or buf;
/// p ← p − lr·d.
public struct SGD: Optimizer {
    public var groups: [ParameterGroup]
    public var momentum: Double
    public var dampening: Double
    public var nesterov: Bool

    public init(_ groups: [ParameterGroup], momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false) throws {
        try checkGroups("SGD", groups)
        guard momentum.isFinite, momentum >= 0 else { throw ShapeError("SGD", "invalid momentum \(momentum) (needs ≥ 0)") }
        guard dampening.isFinite else { throw ShapeError("SGD", "invalid dampening \(dampening)") }
        guard !nesterov || (momentum > 0 && dampening == 0) else {
            throw ShapeError("SGD", "Nesterov momentum requires momentum > 0 and dampening 0 (got momentum \(momentum), dampening \(dampening))")
        }
        self.groups = groups
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
    }

    public init(_ params: [Parameter], lr: Double, momentum: Double = 0, dampening: Double = 0,
                weightDecay: Double = 0, nesterov: Bool = false) throws {
        try self.init([ParameterGroup(params: params, lr: lr, weightDecay: weightDecay)],
                      momentum: momentum, dampening: dampening, nesterov: nesterov)
    }

    public func update(_ p: Parameter, grad: Tensor, group: ParameterGroup) throws {
        let (lr, wd, mu, damp) = (group.lr, group.weightDecay, momentum, dampening)
        let n = p.value.count
        if let b = p.momentumBuffer, b.shape != p.value.shape {
            throw ShapeError("SGD", "momentum buffer of shape \(b.shape) for parameter '\(p.name)' of shape \(p.value.shape)")
        }
        // One pass over p, g and the buffer. The new value goes to a fresh array: the old one is usually still
        // shared with the tape that computed g, so updating it in place would first copy it.
        let had = p.momentumBuffer != nil
        var buf = mu != 0 ? (p.momentumBuffer?.data ?? [Double](repeating: 0, count: n)) : []
        p.momentumBuffer = nil
        let kind = mu == 0 ? 0 : (!had ? 1 : (nesterov ? 3 : 2))
        let value = [Double](unsafeUninitializedCapacity: n) { out, count in
            p.value.data.withUnsafeBufferPointer { pp in
                grad.data.withUnsafeBufferPointer { pg in
                    buf.withUnsafeMutableBufferPointer { pb in
                        sgdKernel(n, pg.baseAddress, pp.baseAddress, pb.baseAddress, out.baseAddress, lr: lr, wd: wd, mu: mu,
                                  c: 1 - damp, kind: kind, nesterovFirst: nesterov)
                    }
                }
            }
            count = n
        }
        p.value = Tensor(unchecked: p.value.shape, value)
        if mu != 0 { p.momentumBuffer = Tensor(unchecked: p.value.shape, buf) }
        p.step += 1
    }
}

/// SGD's elementwise update, in torch's order of operations: d = g + wd·p; the buffer b = d (first step) or
/// b·μ + (1 − dampening)·d; d = d + μ·b (Nesterov) or b; p′ = p + (−lr)·d. `kind`: 0 no momentum, 1 first
/// momentum step, 2 momentum, 3 Nesterov. Four elements at a time (lane-wise IEEE operations, the scalar bits).
@inline(__always)
private func sgdKernel(_ n: Int, _ pg: UnsafePointer<Double>?, _ pp: UnsafePointer<Double>?, _ pb: UnsafeMutablePointer<Double>?,
                       _ out: UnsafeMutablePointer<Double>?, lr: Double, wd: Double, mu: Double, c: Double, kind: Int,
                       nesterovFirst: Bool) {
    guard n > 0, let pg, let pp, let out else { return }
    @inline(__always) func element<T: SIMD>(_ g: T, _ p: T, _ b0: T, _ decay: Bool, _ kind: Int) -> (p: T, b: T)
    where T.Scalar == Double {
        var d = g
        if decay { d = d + wd * p }
        var b = b0
        switch kind {
        case 1: b = d; if nesterovFirst { d = d + mu * b } else { d = b }
        case 2: b = b * mu + c * d; d = b
        case 3: b = b * mu + c * d; d = d + mu * b
        default: break
        }
        return (p + (-lr) * d, b)
    }
    @inline(__always) func body(_ decay: Bool, _ kind: Int) {
        typealias V = SIMD4<Double>
        let rg = UnsafeRawPointer(pg), rp = UnsafeRawPointer(pp), ro = UnsafeMutableRawPointer(out)
        let rb = pb.map { UnsafeMutableRawPointer($0) }
        var i = 0
        while i &+ 4 <= n {
            let o = i &* 8
            let b0 = kind >= 2 ? rb!.loadUnaligned(fromByteOffset: o, as: V.self) : V()
            let r = element(rg.loadUnaligned(fromByteOffset: o, as: V.self), rp.loadUnaligned(fromByteOffset: o, as: V.self), b0, decay, kind)
            ro.storeBytes(of: r.p, toByteOffset: o, as: V.self)
            if kind != 0 { rb!.storeBytes(of: r.b, toByteOffset: o, as: V.self) }
            i &+= 4
        }
        while i < n {
            let r = element(SIMD2(pg[i], 0), SIMD2(pp[i], 0), SIMD2(kind >= 2 ? pb![i] : 0, 0), decay, kind)
            out[i] = r.p[0]
            if kind != 0 { pb![i] = r.b[0] }
            i &+= 1
        }
    }
    switch (wd != 0, kind) {
    case (false, 0): body(false, 0)
    case (false, 1): body(false, 1)
    case (false, 2): body(false, 2)
    case (false, _): body(false, 3)
    case (true, 0): body(true, 0)
    case (true, 1): body(true, 1)
    case (true, 2): body(true, 2)
    default: body(true, 3)
    }
}

// MARK: - Adam / AdamW

/// The shared Adam kernel (torch.optim.adam._single_tensor_adam, amsgrad=False), t = step after
/// the increment: decoupled ⇒ p ← p·(1 − lr·wd) (AdamW) else g ← g + wd·p (Adam);
/// m ← lerp(m, g, 1 − β₁); v ← β₂·v + (1 − β₂)·g²;
/// p ← p − (lr/(1 − β₁ᵗ))·m / (√v/√(1 − β₂ᵗ) + eps).
private func adamUpdate(_ op: String, _ p: Parameter, grad: Tensor, lr: Double, beta1: Double, beta2: Double,
                        eps: Double, weightDecay wd: Double, decoupled: Bool) throws {
    let shape = p.value.shape
    for (nm, t) in [("exp_avg", p.expAvg), ("exp_avg_sq", p.expAvgSq)] {
        if let t, t.shape != shape {
            throw ShapeError(op, "\(nm) of shape \(t.shape) for parameter '\(p.name)' of shape \(shape)")
        }
    }
    let n = p.value.count
    // Take the arrays out of the parameter before mutating them, so that a state array nobody else
    // holds is updated in place (copy-on-write copies only what is shared, e.g. a value on a tape).
    var m = p.expAvg?.data ?? [Double](repeating: 0, count: n)
    p.expAvg = nil
    var v = p.expAvgSq?.data ?? [Double](repeating: 0, count: n)
    p.expAvgSq = nil
    var x = p.value.data
    p.value.data = []
    p.step += 1
    let t = Double(p.step)
    let bc1 = 1 - Foundation.pow(beta1, t)
    let bc2 = 1 - Foundation.pow(beta2, t)
    let stepSize = lr / bc1
    let bc2Sqrt = bc2.squareRoot()
    let w = 1 - beta1
    grad.data.withUnsafeBufferPointer { pg in
        x.withUnsafeMutableBufferPointer { px in
            m.withUnsafeMutableBufferPointer { pm in
                v.withUnsafeMutableBufferPointer { pv in
                    adamKernel(n, pg.baseAddress, px.baseAddress, pm.baseAddress, pv.baseAddress, lr: lr, beta2: beta2, eps: eps,
                               wd: wd, decoupled: decoupled, w: w, stepSize: stepSize, bc2Sqrt: bc2Sqrt)
                }
            }
        }
    }
    p.value = Tensor(unchecked: shape, x)
    p.expAvg = Tensor(unchecked: shape, m)
    p.expAvgSq = Tensor(unchecked: shape, v)
}

/// The elementwise Adam update, its branches (decay, lerp form) hoisted out of the loop; the arithmetic
/// of each element is exactly the formula above, in the same order. Four elements at a time: the square root
/// and the two divisions dominate, and lane-wise IEEE operations give the scalar loop's bits.
@inline(__always)
private func adamKernel(_ n: Int, _ pg: UnsafePointer<Double>?, _ px: UnsafeMutablePointer<Double>?,
                        _ pm: UnsafeMutablePointer<Double>?, _ pv: UnsafeMutablePointer<Double>?, lr: Double, beta2: Double,
                        eps: Double, wd: Double, decoupled: Bool, w: Double, stepSize: Double, bc2Sqrt: Double) {
    guard n > 0, let pg, let px, let pm, let pv else { return }
    @inline(__always) func element<T: SIMD>(_ g0: T, _ x0: T, _ m0: T, _ v0: T, _ decay: Int, _ lowW: Bool) -> (x: T, m: T, v: T)
    where T.Scalar == Double {
        let b2c = 1 - beta2, shrink = 1 - lr * wd, w1 = 1 - w, ns = -stepSize
        var g = g0, x = x0
        if decay == 1 { x = x * shrink } else if decay == 2 { g = g + wd * x }
        // torch lerp: start + w·(end − start) for w < 0.5, else end − (end − start)·(1 − w)
        let mi = lowW ? m0 + w * (g - m0) : g - (g - m0) * w1
        let vi = v0 * beta2 + b2c * g * g
        let denom = vi.squareRoot() / bc2Sqrt + eps
        return (x + ns * mi / denom, mi, vi)
    }
    @inline(__always) func body(_ decay: Int, _ lowW: Bool) {
        typealias V = SIMD4<Double>
        let rg = UnsafeRawPointer(pg), rx = UnsafeMutableRawPointer(px), rm = UnsafeMutableRawPointer(pm), rv = UnsafeMutableRawPointer(pv)
        var i = 0
        while i &+ 4 <= n {
            let o = i &* 8
            let r = element(rg.loadUnaligned(fromByteOffset: o, as: V.self), rx.loadUnaligned(fromByteOffset: o, as: V.self),
                            rm.loadUnaligned(fromByteOffset: o, as: V.self), rv.loadUnaligned(fromByteOffset: o, as: V.self), decay, lowW)
            rx.storeBytes(of: r.x, toByteOffset: o, as: V.self)
            rm.storeBytes(of: r.m, toByteOffset: o, as: V.self)
            rv.storeBytes(of: r.v, toByteOffset: o, as: V.self)
            i &+= 4
        }
        while i < n {
            let r = element(SIMD2(pg[i], 0), SIMD2(px[i], 0), SIMD2(pm[i], 0), SIMD2(pv[i], 0), decay, lowW)
            (px[i], pm[i], pv[i]) = (r.x[0], r.m[0], r.v[0])
            i &+= 1
        }
    }
    let decay = decoupled ? 1 : (wd != 0 ? 2 : 0)
    switch (decay, w < 0.5) {
    case (0, true): body(0, true)
    case (0, false): body(0, false)
    case (1, true): body(1, true)
    case (1, false): body(1, false)
    case (2, true): body(2, true)
    default: body(2, false)
    }
}

private func checkAdam(_ op: String, _ groups: [ParameterGroup], _ b1: Double, _ b2: Double, _ eps: Double) throws {
    try checkGroups(op, groups)
    guard b1 >= 0 && b1 < 1 else { throw ShapeError(op, "invalid beta1 \(b1) (needs 0 ≤ beta1 < 1)") }
    guard b2 >= 0 && b2 < 1 else { throw ShapeError(op, "invalid beta2 \(b2) (needs 0 ≤ beta2 < 1)") }
    guard eps.isFinite, eps >= 0 else { throw ShapeError(op, "invalid eps \(eps) (needs ≥ 0)") }
}

/// torch.optim.Adam (amsgrad=False): L2 weight decay added to the gradient (coupled).
public struct Adam: Optimizer {
    public var groups: [ParameterGroup]
    public var beta1: Double, beta2: Double, eps: Double

    public init(_ groups: [ParameterGroup], beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) throws {
        try checkAdam("Adam", groups, beta1, beta2, eps)
        self.groups = groups
        (self.beta1, self.beta2, self.eps) = (beta1, beta2, eps)
    }

    public init(_ params: [Parameter], lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                eps: Double = 1e-8, weightDecay: Double = 0) throws {
        try self.init([ParameterGroup(params: params, lr: lr, weightDecay: weightDecay)], beta1: beta1, beta2: beta2, eps: eps)
    }

    public func update(_ p: Parameter, grad: Tensor, group: ParameterGroup) throws {
        try adamUpdate("Adam", p, grad: grad, lr: group.lr, beta1: beta1, beta2: beta2, eps: eps,
                       weightDecay: group.weightDecay, decoupled: false)
    }
}

/// torch.optim.AdamW (amsgrad=False): decoupled decay p ← p·(1 − lr·wd) before the Adam update.
/// Note torch's AdamW default weight_decay is 0.01 (kept here for parameter lists).
public struct AdamW: Optimizer {
    public var groups: [ParameterGroup]
    public var beta1: Double, beta2: Double, eps: Double

    public init(_ groups: [ParameterGroup], beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) throws {
        try checkAdam("AdamW", groups, beta1, beta2, eps)
        self.groups = groups
        (self.beta1, self.beta2, self.eps) = (beta1, beta2, eps)
    }

    public init(_ params: [Parameter], lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                eps: Double = 1e-8, weightDecay: Double = 0.01) throws {
        try self.init([ParameterGroup(params: params, lr: lr, weightDecay: weightDecay)], beta1: beta1, beta2: beta2, eps: eps)
    }

    public func update(_ p: Parameter, grad: Tensor, group: ParameterGroup) throws {
        try adamUpdate("AdamW", p, grad: grad, lr: group.lr, beta1: beta1, beta2: beta2, eps: eps,
                       weightDecay: group.weightDecay, decoupled: true)
    }
}

// MARK: - One-step functions (the certified protocols run these)

/// One torch.optim.SGD step on a single tensor; `momentumBuffer` nil means none yet (first step).
/// Returns the new parameter and buffer (nil when momentum = 0: torch keeps none).
public func sgdStep(param: Tensor, grad: Tensor, momentumBuffer: Tensor?, lr: Double, momentum: Double,
                    dampening: Double, weightDecay: Double, nesterov: Bool) throws -> (param: Tensor, momentumBuffer: Tensor?) {
    let p = Parameter("param", param)
    p.momentumBuffer = momentum != 0 ? momentumBuffer : nil
    let opt = try SGD([p], lr: lr, momentum: momentum, dampening: dampening, weightDecay: weightDecay, nesterov: nesterov)
    try opt.step(grads: [grad])
    return (p.value, momentum != 0 ? p.momentumBuffer : nil)
}

private func adamStateParameter(_ op: String, param: Tensor, expAvg: Tensor, expAvgSq: Tensor, step: Int) throws -> Parameter {
    guard step >= 1 else { throw ShapeError(op, "step must be ≥ 1 (the index of this step), got \(step)") }
    let p = Parameter("param", param)
    (p.expAvg, p.expAvgSq, p.step) = (expAvg, expAvgSq, step - 1)
    return p
}

/// One torch.optim.Adam step; `step` is the index t ≥ 1 of THIS step (torch's state['step'] after it).
public func adamStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, step: Int, lr: Double,
                     beta1: Double, beta2: Double, eps: Double, weightDecay: Double) throws
    -> (param: Tensor, expAvg: Tensor, expAvgSq: Tensor) {
    let p = try adamStateParameter("Adam", param: param, expAvg: expAvg, expAvgSq: expAvgSq, step: step)
    try Adam([p], lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay).step(grads: [grad])
    return (p.value, p.expAvg!, p.expAvgSq!)
}

/// One torch.optim.AdamW step; `step` is the index t ≥ 1 of THIS step.
public func adamwStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, step: Int, lr: Double,
                      beta1: Double, beta2: Double, eps: Double, weightDecay: Double) throws
    -> (param: Tensor, expAvg: Tensor, expAvgSq: Tensor) {
    let p = try adamStateParameter("AdamW", param: param, expAvg: expAvg, expAvgSq: expAvgSq, step: step)
    try AdamW([p], lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay).step(grads: [grad])
    return (p.value, p.expAvg!, p.expAvgSq!)
}

// MARK: - Gradient clipping

/// torch.nn.utils.clip_grad_norm_(…, max_norm, norm_type): total = ‖(‖g₀‖_p, ‖g₁‖_p, …)‖_p
/// (p = ∞: the largest |entry|); c = min(max_norm/(total + 1e-6), 1); every gᵢ ← c·gᵢ — ALWAYS
/// multiplied, by exactly 1 when not clipping. Returns the clipped gradients and the total norm
/// before clipping.
public func clipGradNorm(_ grads: [Tensor], maxNorm: Double, normType: Double = 2) throws -> (grads: [Tensor], totalNorm: Double) {
    guard !maxNorm.isNaN else { throw ShapeError("clip_grad_norm", "max_norm is NaN") }
    guard normType > 0 else {
        throw ShapeError("clip_grad_norm", "norm_type must be > 0 or inf, got \(normType)")
    }
    if grads.isEmpty { return ([], 0) }
    func norm(_ xs: [Double]) -> Double {
        if normType == .infinity { return xs.reduce(0) { Swift.max($0, Swift.abs($1)) } }
        if normType == 2 { return xs.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        if normType == 1 { return xs.reduce(0) { $0 + Swift.abs($1) } }
        return Foundation.pow(xs.reduce(0) { $0 + Foundation.pow(Swift.abs($1), normType) }, 1 / normType)
    }
    let total = norm(grads.map { norm($0.data) })
    let c = Swift.min(maxNorm / (total + 1e-6), 1.0)
    return (grads.map { $0 * c }, total)
}

/// Clips the gradients of an optimizer step in place (see `clipGradNorm(_:maxNorm:normType:)`);
/// returns the total norm before clipping.
@discardableResult
public func clipGradNorm(_ grads: inout [Tensor], maxNorm: Double, normType: Double = 2) throws -> Double {
    let r = try clipGradNorm(grads, maxNorm: maxNorm, normType: normType)
    grads = r.grads
    return r.totalNorm
}
