// swift-tools-version:5.9
// BackLite for Swift: a persistent cache in one SQLite file, over the C library.
//
// The C library (libbacklite.so / .a and backlite.h) is found through pkg-config
// (backlite.pc, installed by `cmake --install`), or through
// `swift build -Xcc -I<include dir> -Xlinker -L<lib dir>`.
import PackageDescription

let package = Package(
    name: "BackLite",
    products: [
        .library(name: "BackLite", targets: ["BackLite"]),
    ],
    targets: [
        .systemLibrary(
            name: "CBackLite",
            path: "Sources/CBackLite",
            pkgConfig: "backlite"
        ),
        .target(
            name: "BackLite",
            dependencies: ["CBackLite"]
        ),
        .testTarget(
            name: "BackLiteTests",
            dependencies: ["BackLite", "CBackLite"]
        ),
    ]
)
