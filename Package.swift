// swift-tools-version:6.0
import Foundation
import PackageDescription

let package = Package(
    name: "billa",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "billa", targets: ["billa"]),
        .library(name: "BillaKit", targets: ["BillaKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
    ],
    targets: [
        // The system libzstd (Debian: libzstd-dev). The pack format compresses with it.
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // The verifier's dot-product kernels: C with run-time dispatch to AVX2/FMA/F16C bodies (kernels.c), so the
        // release build is fast on any x86-64 without -target-cpu flags.
        .target(name: "CKernels"),
        .target(
            name: "BillaKit",
            dependencies: [
                "CZstd",
                "CKernels",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "billa",
            dependencies: [
                "BillaKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "BillaKitTests",
            dependencies: ["BillaKit"],
            exclude: []
        ),
    ]
)

// Fuzz targets (Fuzz/, run by scripts/fuzz): only when BILLA_FUZZ is set, so `swift build` and `swift test` never
// build them; scripts/fuzz builds them with -sanitize=fuzzer in its own scratch path (.build-fuzz).
if ProcessInfo.processInfo.environment["BILLA_FUZZ"] != nil {
    package.targets += [
        .target(name: "CFuzzDriver", path: "Fuzz/CFuzzDriver"),
        .executableTarget(name: "BillaFuzz", dependencies: ["BillaKit", "CFuzzDriver"], path: "Fuzz/BillaFuzz"),
    ]
    package.products.append(.executable(name: "billa-fuzz", targets: ["BillaFuzz"]))
}
