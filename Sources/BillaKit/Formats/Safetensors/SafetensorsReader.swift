import Foundation

/// Reads safetensors strictly by the published spec: header at most 100 MB, every dtype and shape valid, byte ranges
/// contiguous from 0 with no holes or overlaps, dtype x shape equal to each range, and the data ending exactly at
/// the end of the file. Validated on open; tensors are then zero-copy slices of the map.
public enum SafetensorsReader {
    public static func open(_ path: String) throws -> TensorFile {
        try open(MappedFile(path: path))
    }

    public static func open(_ file: MappedFile) throws -> TensorFile {
        let path = file.path
        func bad(_ message: String, tensor: String? = nil) -> BillaError {
            BillaError(.invalidHeader, file: path, tensor: tensor, message,
                       remedy: "the file is corrupt or not safetensors; download it again or re-save it with safetensors")
        }
        guard file.size >= 8 else { throw bad("the file has \(file.size) bytes, fewer than the 8-byte header length") }
        var r = ByteReader(file.all, file: path)
        let declared = try r.readLE(UInt64.self, "header length")
        guard declared <= UInt64(SafetensorsLayout.maxHeaderSize) else {
            throw bad("the header claims \(declared) bytes; the limit is \(SafetensorsLayout.maxHeaderSize)")
        }
        let headerLength = Int(declared)
        guard headerLength <= file.size - 8 else {
            throw bad("the header claims \(headerLength) bytes but only \(file.size - 8) follow")
        }
        let header = try file.bytes(at: 8, count: headerLength, what: "header")
        guard header.first == UInt8(ascii: "{") else { throw bad("the header does not start with '{'") }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(header), options: [])
        } catch {
            throw bad("the header is not valid JSON")
        }
        guard let object = json as? [String: Any] else { throw bad("the header is not a JSON object") }

        var metadata = [String: String]()
        struct Entry { let name: String; let dtype: DType; let shape: [Int]; let begin: Int; let end: Int }
        var entries = [Entry]()
        for (name, value) in object {
            if name == SafetensorsLayout.metadataKey {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad("__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any] else { throw bad("entry is not an object", tensor: name) }
            guard let dtypeName = info["dtype"] as? String, let dtype = DType(rawValue: dtypeName), !dtype.isQuantized else {
                throw bad("unknown dtype \(String(describing: info["dtype"] ?? "missing"))", tensor: name)
            }
            guard let shapeValues = info["shape"] as? [Any], let shape = integers(shapeValues), shape.allSatisfy({ $0 >= 0 }) else {
                throw bad("shape is not a list of non-negative integers", tensor: name)
            }
            guard let offsetValues = info["data_offsets"] as? [Any], let offsets = integers(offsetValues), offsets.count == 2,
                  offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw bad("data_offsets is not [begin, end] with begin <= end", tensor: name)
            }
            guard let bytes = Shape.byteCount(shape, dtype) else {
                throw bad("shape \(Shape.describe(shape)) of \(dtype.rawValue) overflows", tensor: name)
            }
            guard bytes == offsets[1] - offsets[0] else {
                throw bad("shape \(Shape.describe(shape)) of \(dtype.rawValue) needs \(bytes) bytes but data_offsets span \(offsets[1] - offsets[0])", tensor: name)
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1]))
        }
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        let dataStart = 8 + headerLength
        let dataLength = file.size - dataStart
        var expected = 0
        for e in entries {
            guard e.begin == expected else {
                throw bad(e.begin > expected ? "a hole of \(e.begin - expected) bytes before this tensor's data"
                                             : "its data overlaps the previous tensor's", tensor: e.name)
            }
            expected = e.end
        }
        guard expected == dataLength else {
            throw bad(expected > dataLength ? "tensor data runs \(expected - dataLength) bytes past the end of the file (truncated?)"
                                            : "\(dataLength - expected) bytes after the last tensor belong to no tensor")
        }
        let tensors = entries.map {
            Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, file: file, layout: .dense(byteOffset: dataStart + $0.begin))
        }
        return TensorFile(path: path, format: .safetensors, tensors: tensors, metadata: metadata)
    }

    /// JSON numbers as exact Ints; nil for anything fractional or out of range.
    private static func integers(_ values: [Any]) -> [Int]? {
        var out = [Int]()
        out.reserveCapacity(values.count)
        for v in values {
            // Foundation bridges a JSON number to Int only when it is exactly an integer in range.
            guard let i = v as? Int else { return nil }
            out.append(i)
        }
        return out
    }
}
