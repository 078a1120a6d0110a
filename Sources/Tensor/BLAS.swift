// Matrix products through OpenBLAS's CBLAS, with a fixed thread count so that results are
// bit-reproducible from run to run (OpenBLAS partitions sums by thread count).

import COpenBLAS
import Foundation

public enum BLAS {
    /// The thread count every product runs with: $CERTIFY_BLAS_THREADS, default 1. Fixed at the
    /// first product so that every result in a run is computed with the same partitioning.
    public static let threads: Int32 = {
        let env = ProcessInfo.processInfo.environment["CERTIFY_BLAS_THREADS"].flatMap { Int32($0) } ?? 1
        return Swift.max(1, env)
    }()
    private static let configured: Void = { openblas_set_num_threads(threads) }()

    static func configure() { _ = configured }

    /// C[m×n] = alpha · op(A) · op(B) (+ beta·C), row-major, with raw buffers. With beta = 0, C is
    /// only written, never read, so it may be uninitialised memory (BLAS zeroes it first).
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double = 1,
                            a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            c: UnsafeMutablePointer<Double>, ldc: Int, beta: Double = 0) {
        configure()
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : c[i * ldc + j] * beta } }
            return
        }
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension Tensor {
    /// Matrix product with NumPy `matmul` semantics for rank ≥ 2 operands: the last two axes
    /// multiply, leading (batch) axes broadcast. Rank-1 operands are not promoted; use reshape.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        guard a.rank >= 2, b.rank >= 2 else {
            throw ShapeError("matmul", "operands need rank ≥ 2, got shapes \(a.shape) and \(b.shape)")
        }
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k1) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        guard k1 == k2 else {
            throw ShapeError("matmul", "inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "") (\(k1) vs \(k2))")
        }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = try broadcastShape(batchA, batchB, op: "matmul")
        let nb = batch.reduce(1, *)
        let sa = broadcastStrides(batchA, to: batch), sb = broadcastStrides(batchB, to: batch)
        let aMat = ar * ac, bMat = br * bc
        // Every element of the output is written by a gemm with beta = 0: no zero fill first.
        let out = a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                [Double](unsafeUninitializedCapacity: nb * m * n) { pc, count in
                    count = nb * m * n
                    if count == 0 { return }
                    if k1 == 0 { pc.initialize(repeating: 0); return }  // empty sums (and maybe empty operands)
                    var idx = [Int](repeating: 0, count: batch.count)
                    for bi in 0..<nb {
                        var oa = 0, ob = 0
                        for d in 0..<batch.count { oa += idx[d] * sa[d]; ob += idx[d] * sb[d] }
                        BLAS.gemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k1,
                             a: pa.baseAddress! + oa * aMat, lda: ac, b: pb.baseAddress! + ob * bMat, ldb: bc,
                             c: pc.baseAddress! + bi * m * n, ldc: n)
                        var d = batch.count - 1
                        while d >= 0 { idx[d] += 1; if idx[d] < batch[d] { break }; idx[d] = 0; d -= 1 }
                    }
                }
            }
        }
        return Tensor(unchecked: batch + [m, n], out)
    }
}
