/// Every failure billa reports. Each one names the file (and tensor, where there is one) and says what the user can
/// do about it, because the people who hit these errors are usually holding a 13 GB download and a deadline.
public struct BillaError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable, Codable {
        case io
        case notFound
        case unknownFormat
        case unsupported
        case corruptContainer
        case hostilePickle
        case invalidHeader
        case outOfBounds
        case shapeMismatch
        case layout
        case checksumMismatch
        case invalidArgument
    }

    public var code: Code
    public var file: String?
    public var tensor: String?
    public var message: String
    public var remedy: String

    public init(_ code: Code, file: String? = nil, tensor: String? = nil, _ message: String, remedy: String) {
        self.code = code
        self.file = file
        self.tensor = tensor
        self.message = message
        self.remedy = remedy
    }

    public var description: String {
        var where_ = ""
        if let file { where_ += file }
        if let tensor { where_ += where_.isEmpty ? "tensor '\(tensor)'" : ", tensor '\(tensor)'" }
        let head = where_.isEmpty ? message : "\(where_): \(message)"
        return remedy.isEmpty ? head : "\(head)\n  remedy: \(remedy)"
    }

    /// Returns the same error with the file filled in, for errors raised by code that only sees bytes.
    public func inFile(_ path: String) -> BillaError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }

    public func forTensor(_ name: String) -> BillaError {
        var copy = self
        if copy.tensor == nil { copy.tensor = name }
        return copy
    }
}

extension BillaError {
    static func truncated(_ what: String, file: String? = nil) -> BillaError {
        BillaError(.corruptContainer, file: file, "file ends inside \(what); it is truncated or not what its name says",
                   remedy: "download the file again and compare it with the published checksum (billa checksum --check)")
    }
}
