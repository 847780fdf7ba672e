import BackLite
import Foundation
import XCTest

final class ReadmeTests: XCTestCase {
    private let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Lines without indentation, blank lines, or imports.
    private func normalize(_ code: Substring) -> [String] {
        code.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("import ") }
    }

    /// The first ```swift block after `heading` in the README.
    private func readmeBlock(after heading: String) throws -> Substring? {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "\(heading)\n\n```swift\n"),
              let end = readme.range(of: "\n```", range: start.upperBound..<readme.endIndex) else { return nil }
        return readme[start.upperBound..<end.lowerBound]
    }

    /// The body of the function whose signature line is `signature` in ReadmeExample.swift.
    private func exampleBody(_ signature: String) throws -> (body: Substring, source: String)? {
        let source = try String(
            contentsOf: packageRoot.appendingPathComponent("Tests/BackLiteTests/ReadmeExample.swift"), encoding: .utf8)
        guard let open = source.range(of: signature + " {\n"),
              let close = source.range(of: "\n}\n", range: open.upperBound..<source.endIndex) else { return nil }
        return (source[open.upperBound..<close.lowerBound], source)
    }

    private func assertSame(heading: String, signature: String) throws {
        let block = try XCTUnwrap(try readmeBlock(after: heading), "README.md: no ```swift block under \(heading)")
        let (body, source) = try XCTUnwrap(try exampleBody(signature), "ReadmeExample.swift: no \(signature)")
        XCTAssertEqual(normalize(block), normalize(body),
                       "the README's block under \(heading) is not the body of \(signature): copy one to the other")
        for line in block.split(separator: "\n") where line.hasPrefix("import ") {
            XCTAssertTrue(source.contains(line + "\n"), "ReadmeExample.swift lacks \(line)")
        }
    }

    func testTheReadmeExamplesAreTheFunctionsOfReadmeExampleSwift() throws {
        try assertSame(heading: "## Example", signature: "func readmeExample() throws")
        try assertSame(heading: "## Async memoisation", signature: "func readmeAsyncExample(cache: Storage) async throws")
        try assertSame(heading: "## Reading a large value", signature: "func readmeReaderExample(cache: Storage) async throws")
    }

    func testTheReadmeExamplesRun() async throws {
        let dir = try makeTemporaryDirectory(self)
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(dir.path))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try readmeExample()
        try readmeExample() // the second run answers from the file
        let cache = try Storage(url: dir.appendingPathComponent("cache.db"))
        try await readmeAsyncExample(cache: cache)
        try await readmeReaderExample(cache: cache)
        XCTAssertEqual(try cache.get("answer"), Data("42".utf8))
        XCTAssertEqual(try cache.get("report"), Data("report".utf8))
        XCTAssertNil(try cache.get("big"))
    }
}
