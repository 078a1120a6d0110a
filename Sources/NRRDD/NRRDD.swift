// NRR-DD's certified methods: one file per method, named as in the paper.
// Tran et al., "Enhancing Dataset Distillation via Non-Critical Region Refinement" (CVPR 2025); the
// pipeline it extends is RDED (Sun et al., CVPR 2024, github.com/LINs-lab/RDED @ 3f6453d). NRR-DD's own
// code could not be read: every constant the paper does not give is a parameter (protocols/nrrdd/*.yaml).

import Certification
import Foundation
import Ops
import Tensor

/// Every NRR-DD protocol entry, registered by CertifyMethods.registerAll().
public let nrrddMethods: [Method] = [
    camMethod, selectionMethod, stitchingMethod, refinementMethod, dbrMethod, relabelMethod,
]

/// A bad parameter or input of an NRR-DD function: one line naming it and what was expected.
public struct NRRDDError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// "nrrdd: epsilon must be in [0, 1], got 1.5".
    static func parameter(_ name: String, _ expected: String, _ got: Any) -> NRRDDError {
        NRRDDError("nrrdd: \(name) must be \(expected), got \(got)")
    }
}

/// Throws unless `ok`.
@inline(__always) func check(_ ok: Bool, _ name: String, _ expected: String, _ got: @autoclosure () -> Any) throws {
    if !ok { throw NRRDDError.parameter(name, expected, got()) }
}

/// Integer labels from a tensor of class indices, each in 0..<classes.
func labelList(_ t: Tensor, classes: Int, name: String = "labels") throws -> [Int] {
    try t.data.map { v in
        guard v.isFinite, v == v.rounded(), v >= 0, v < Double(classes) else {
            throw NRRDDError.parameter(name, "class indices in [0, \(classes))", v)
        }
        return Int(v)
    }
}

/// One-hot rows [n, classes] as a tensor.
func oneHot(_ labels: [Int], classes: Int) -> Tensor {
    var d = [Double](repeating: 0, count: labels.count * classes)
    for (i, y) in labels.enumerated() { d[i * classes + y] = 1 }
    return Tensor(unchecked: [labels.count, classes], d)
}

/// A crop box in pixels, torchvision's get_params order: (top, left, height, width).
public struct CropBox: Sendable, Equatable, Hashable {
    public var top: Int, left: Int, height: Int, width: Int
    public init(top: Int, left: Int, height: Int, width: Int) {
        (self.top, self.left, self.height, self.width) = (top, left, height, width)
    }
    /// Throws unless the box is non-empty and inside an H × W image.
    public func validate(height H: Int, width W: Int, name: String = "box") throws {
        guard height > 0, width > 0 else {
            throw NRRDDError.parameter(name, "a non-empty box (height, width ≥ 1)", "(top \(top), left \(left), height \(height), width \(width))")
        }
        guard top >= 0, left >= 0, top + height <= H, left + width <= W else {
            throw NRRDDError.parameter(name, "inside the \(H) × \(W) image", "(top \(top), left \(left), height \(height), width \(width))")
        }
    }
}

/// Boxes from a tensor [..., 4] of (top, left, height, width).
func boxList(_ t: Tensor, name: String = "boxes") throws -> [CropBox] {
    guard t.rank >= 1, t.shape.last == 4 else { throw NRRDDError.parameter(name, "shape [..., 4]", t.shape) }
    return try stride(from: 0, to: t.count, by: 4).map { o in
        let v = try (0..<4).map { try checkedInt(t.data[o + $0], "\(name) entry") }
        return CropBox(top: v[0], left: v[1], height: v[2], width: v[3])
    }
}
