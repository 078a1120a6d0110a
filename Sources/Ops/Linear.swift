// Affine map, as torch.nn.functional.linear.

import Tensor

/// y[..., o] = Σᵢ x[..., i] · weight[o, i] + bias[o]  (torch.nn.functional.linear; weight is [out, in]).
/// x has rank ≥ 1; its leading axes are flattened into one GEMM. VJP: ∂x = G·W, ∂W = Gᵀ·X, ∂b = Σ G.
public func linear(_ x: Var, weight: Var, bias: Var?) throws -> Var {
    let t = try sameTape("linear", x, weight)
    if let bias { _ = try sameTape("linear", x, bias) }
    let xs = x.shape, ws = weight.shape
    guard xs.count >= 1 else { throw ShapeError("linear", "x must have rank ≥ 1, got shape \(xs)") }
    guard ws.count == 2 else { throw ShapeError("linear", "weight must be [out_features, in_features], got shape \(ws)") }
    let fin = xs[xs.count - 1], fout = ws[0]
    guard ws[1] == fin else {
        throw ShapeError("linear", "weight shape \(ws) needs in_features \(ws[1]) to equal the last axis of x (shape \(xs))")
    }
    if let bias, bias.shape != [fout] {
        throw ShapeError("linear", "bias shape \(bias.shape) must be [\(fout)] for weight shape \(ws)")
    }
    let m = xs.dropLast().reduce(1, *)
    var out = [Double](repeating: 0, count: m * fout)
    let hasBias = bias != nil
    if let b = bias?.value.data {
        out.withUnsafeMutableBufferPointer { po in
            for r in 0..<m { for o in 0..<fout { po[r * fout + o] = b[o] } }
        }
    }
    x.value.data.withUnsafeBufferPointer { px in
        weight.value.data.withUnsafeBufferPointer { pw in
            out.withUnsafeMutableBufferPointer { po in
                BLAS.gemm(transA: false, transB: true, m: m, n: fout, k: fin, a: cvBase(px), lda: fin,
                          b: cvBase(pw), ldb: fin, c: cvMut(po), ldc: fout, beta: hasBias ? 1 : 0)
            }
        }
    }
    let y = Tensor(unchecked: Array(xs.dropLast()) + [fout], out)
    let parents = [x, weight] + (bias.map { [$0] } ?? [])
    let xv = x.value, wv = weight.value
    return t.record(y, parents: parents) { g, needs in
        // Only the cotangents some requested gradient depends on (a network's input needs no ∂x).
        var gx = [Double](), gw = [Double]()
        var gb = [Double](repeating: 0, count: hasBias && needs[2] ? fout : 0)
        g.data.withUnsafeBufferPointer { pg in
            xv.data.withUnsafeBufferPointer { px in
                wv.data.withUnsafeBufferPointer { pw in
                    if needs[0] {
                        gx = [Double](unsafeUninitializedCapacity: m * fin) { buf, count in
                            BLAS.gemm(transA: false, transB: false, m: m, n: fin, k: fout, a: cvBase(pg), lda: fout,
                                      b: cvBase(pw), ldb: fin, c: cvMut(buf), ldc: fin)
                            count = m * fin
                        }
                    }
                    if needs[1] {
                        gw = [Double](unsafeUninitializedCapacity: fout * fin) { buf, count in
                            BLAS.gemm(transA: true, transB: false, m: fout, n: fin, k: m, a: cvBase(pg), lda: fout,
                                      b: cvBase(px), ldb: fin, c: cvMut(buf), ldc: fin)
                            count = fout * fin
                        }
                    }
                }
            }
            if hasBias && needs[2] {
                for r in 0..<m { for o in 0..<fout { gb[o] += pg[r * fout + o] } }
            }
        }
        var grads: [Tensor?] = [needs[0] ? Tensor(unchecked: xs, gx) : nil, needs[1] ? Tensor(unchecked: ws, gw) : nil]
        if hasBias { grads.append(needs[2] ? Tensor(unchecked: [fout], gb) : nil) }
        return grads
    }
}

/// Storage for the base pointer of an empty buffer (whose baseAddress may be nil); never read
/// or written, since every loop over an empty buffer runs zero times.
nonisolated(unsafe) private let cvEmptyStorage = UnsafeMutablePointer<Double>.allocate(capacity: 1)

/// A non-nil base pointer for a possibly empty buffer.
@inline(__always) func cvBase(_ p: UnsafeBufferPointer<Double>) -> UnsafePointer<Double> {
    UnsafePointer(p.baseAddress ?? UnsafePointer(cvEmptyStorage))
}

/// A non-nil base pointer for a possibly empty mutable buffer.
@inline(__always) func cvMut(_ p: UnsafeMutableBufferPointer<Double>) -> UnsafeMutablePointer<Double> {
    p.baseAddress ?? cvEmptyStorage
}
