// swift-tools-version:6.0
// A package of its own that uses BackLite's Swift package, by path, in the Swift 6
// language mode (complete concurrency checking), as a new app would.
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
