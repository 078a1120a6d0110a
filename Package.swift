// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Certify",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "certify", targets: ["CertifyCLI"]),
        // The reference implementations and their core, for Swift users who depend on them directly.
        .library(name: "Certification", targets: ["Certification"]),
        .library(name: "CertifyMethods", targets: ["CertifyMethods"]),
        .library(name: "IADG", targets: ["IADG"]),
        .library(name: "InputGradients", targets: ["InputGradients"]),
        .library(name: "LAVA", targets: ["LAVA"]),
        .library(name: "NRRDD", targets: ["NRRDD"]),
        .library(name: "Ops", targets: ["Ops"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "HDF5", targets: ["HDF5"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics.git", from: "1.0.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "HDF5", dependencies: ["CHDF5"]),
        .target(name: "Tensor", dependencies: ["COpenBLAS", .product(name: "RealModule", package: "swift-numerics")]),
        .target(name: "Ops", dependencies: ["Tensor", .product(name: "RealModule", package: "swift-numerics")]),
        .target(name: "Certification", dependencies: ["HDF5", "Tensor", "Ops", "Yams"]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "IADG", dependencies: ["Certification", "Ops", "Tensor"]),
        .target(name: "InputGradients", dependencies: ["Certification", "Ops", "Tensor", "HDF5", "CZlib"]),
        .target(name: "LAVA", dependencies: ["Certification", "Ops", "Tensor", "HDF5"]),
        .target(name: "NRRDD", dependencies: ["Certification", "Ops", "Tensor", "HDF5", "InputGradients"]),
        .target(name: "CertifyMethods", dependencies: ["Certification", "Ops", "Tensor", "IADG", "InputGradients", "LAVA", "NRRDD"]),
        .executableTarget(name: "CertifyCLI", dependencies: [
            "CertifyMethods", "Certification", "HDF5", "Tensor", "Ops", "IADG", "InputGradients", "LAVA", "NRRDD",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5"]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "CertificationTests", dependencies: ["Certification", "CertifyMethods", "HDF5", "Tensor", "Ops",
            .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "OpsTests", dependencies: ["Ops", "Tensor", "Certification", "CertifyMethods",
            .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "CLITests", dependencies: ["HDF5", "Certification"]),
        .testTarget(name: "IADGTests", dependencies: ["IADG", "Certification", "CertifyMethods", "Ops", "Tensor",
            .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "InputGradientsTests", dependencies: ["InputGradients", "Certification", "CertifyMethods", "Ops", "Tensor", "HDF5",
            .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "NRRDDTests", dependencies: ["NRRDD", "Certification", "CertifyMethods", "Ops", "Tensor", "HDF5"]),
        .testTarget(name: "LAVATests", dependencies: ["LAVA", "Certification", "CertifyMethods", "Ops", "Tensor", "HDF5",
            .product(name: "PropertyBased", package: "swift-property-based")]),
    ]
)
