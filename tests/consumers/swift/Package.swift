// swift-tools-version:5.9
// A package of its own that uses BackLite's Swift package, by path.
import PackageDescription

let package = Package(
    name: "App",
    dependencies: [
        .package(path: "../backlite/bindings/swift"),
    ],
    targets: [
        .executableTarget(name: "App", dependencies: [
            .product(name: "BackLite", package: "swift"),
        ]),
    ]
)
