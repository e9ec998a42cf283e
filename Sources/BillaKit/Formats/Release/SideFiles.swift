import Foundation

/// A model's non-tensor files (tokenizer.model, config.json, tokenizer_config.json, ...) by name, wherever the model
/// keeps them: beside the weights in a directory, or as blobs inside a pack. Consumers read them through this, so a
/// pack serves its tokenizer and configs exactly as the directory it was packed from did.
public struct SideFiles: Sendable {
    enum Store: Sendable {
        case directory(String)
        case pack(String)
        case none
    }

    let store: Store

    /// Files beside the weights in `directory`.
    public static func directory(_ path: String) -> SideFiles { SideFiles(store: .directory(path)) }
    /// The blobs of the pack at `path`.
    public static func pack(_ path: String) -> SideFiles { SideFiles(store: .pack(path)) }
    /// A bare tensor file has none.
    public static let none = SideFiles(store: .none)

    /// How errors and reports name the file: `DIR/name`, or `PACK:name` for a blob.
    public func location(_ name: String) -> String {
        switch store {
        case .directory(let d): return d + "/" + name
        case .pack(let p): return p + ":" + name
        case .none: return name
        }
    }

    /// The file's bytes, or nil when the model has no such file.
    public func bytes(_ name: String) throws -> [UInt8]? {
        switch store {
        case .directory(let d):
            let path = d + "/" + name
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            let file = try MappedFile(path: path)
            return withExtendedLifetime(file) { Array(file.all) }
        case .pack(let p):
            let pack = try PackReader.open(p)
            return try withExtendedLifetime(pack) { try pack.blob(named: name).map { Array($0) } }
        case .none:
            return nil
        }
    }

    /// The file parsed as a JSON object, or nil when absent.
    public func json(_ name: String) throws -> [String: Any]? {
        guard let b = try bytes(name) else { return nil }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(b))) as? [String: Any] else {
            throw BillaError(.invalidHeader, file: location(name), "not a JSON object", remedy: "download the file again")
        }
        return object
    }
}

extension Release {
    /// Where this model's side files are: the pack's blobs when it was read from a pack, the directory otherwise.
    public var sideFiles: SideFiles {
        if isPack { return .pack(path) }
        if layout == .file { return .none }
        return .directory(path)
    }
}
