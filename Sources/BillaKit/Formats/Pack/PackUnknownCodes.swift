/// formats/pack.md 8: a newer minor version may use dtype or transform codes this billa does not know. Such a tensor
/// cannot be misread, so it is opened as unreadable (reading it throws) while every other tensor reads normally;
/// its place in the file is still validated, so the overlap checks cover it.
extension PackReader {
    /// Why the tensor cannot be read, or nil when both codes are known. Transforms matter only for chunked storage.
    static func unknownCodes(_ dtypeCode: UInt16, _ transformCode: UInt8, storage: UInt8, version: (UInt16, UInt16)) -> String? {
        if PackLayout.dtypesByCode[dtypeCode] == nil {
            if let block = PackLayout.blockDTypes[dtypeCode] {
                return "dtype \(block.name) is a quantized block type this billa cannot read yet"
            }
            return "unknown dtype code \(dtypeCode): written by a newer billa (pack \(version.0).\(version.1))"
        }
        if storage == 1, PlaneTransform(rawValue: transformCode) == nil {
            return "unknown transform code \(transformCode): written by a newer billa (pack \(version.0).\(version.1))"
        }
        return nil
    }

    /// The entry of an unreadable tensor: placeholder dtype U8 (one byte per element), real shape, and its extent
    /// checked with the rules that do not depend on the dtype.
    static func unreadableEntry(_ name: String, shape: [Int], group: Int, storage: UInt8, dataOffset: UInt64, dataLength: UInt64,
                                chunkBytes: UInt64, chunkCount: UInt64, indexOffset: UInt64, sha256: [UInt8], alignment: Int,
                                fail: (String) -> BillaError,
                                inData: (UInt64, UInt64, String) throws -> (Int, Int)) throws -> PackTensorEntry {
        guard Shape.byteCount(shape, .u8) != nil else { throw fail("shape \(Shape.describe(shape)) overflows") }
        var e = PackTensorEntry(name: name, shape: shape, dtype: .u8, chunked: storage == 1, transform: .none, group: group,
                                dataOffset: 0, dataLength: 0, chunkBytes: 0, chunkCount: 0, indexOffset: 0, indexXXH64: 0, sha256: sha256)
        let sum = dataOffset.addingReportingOverflow(dataLength)
        let (start, end) = try inData(dataOffset, sum.overflow ? UInt64.max : sum.partialValue, "tensor '\(name)'")
        e.dataOffset = start
        e.dataLength = end - start
        switch storage {
        case 0:
            guard chunkBytes == 0, chunkCount == 0, indexOffset == 0 else { throw fail("a raw tensor must have chunk and index fields 0") }
            guard dataOffset % UInt64(alignment) == 0 else { throw fail("raw data at \(dataOffset) is not aligned to \(alignment)") }
        case 1:
            guard chunkBytes > 0, chunkBytes <= UInt64(PackLayout.maxChunkBytes), chunkCount >= 1, chunkCount <= UInt64(1) << 40 else {
                throw fail("chunk size \(chunkBytes) or chunk count \(chunkCount) is impossible")
            }
            guard let idx = alignUp(end, 8), UInt64(idx) == indexOffset else {
                throw fail("the chunk index must start at the 8-aligned end of the data, not \(indexOffset)")
            }
            _ = try inData(dataOffset, UInt64(idx) + chunkCount * UInt64(PackLayout.chunkRecordSize), "tensor '\(name)' with its chunk index")
            e.chunkBytes = Int(chunkBytes)
            e.chunkCount = Int(chunkCount)
            e.indexOffset = idx
        default:
            throw fail("unknown storage code \(storage): written by a newer billa")
        }
        return e
    }
}
