/// Writes PyTorch checkpoints (`.pth` / `.bin`) that `torch.load(path, weights_only=True)` reads as an OrderedDict
/// of tensors, laid out exactly as `torch.save` (torch 2.x) lays out the same dict: records data.pkl,
/// .format_version, .storage_alignment, byteorder, data/N, version and .data/serialization_id in that order, each
/// storage 64-byte aligned, ZIP64 records where sizes need them. Tensors stream one at a time and their CRC-32 is
/// computed while they are written, so memory stays at one write buffer whatever the checkpoint's size.
public enum TorchWriter {
    /// What torch 2.x writes into the small records.
    enum Records {
        static let formatVersion = "1"
        static let storageAlignment = "64"
        static let byteOrder = "little"
        static let version = "3\n"
    }

    /// torch names the archive's top folder after the file, minus directories and the last extension.
    public static func archiveName(for path: String) -> String {
        let base = path.split(separator: "/").last.map(String.init) ?? path
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { return String(base[..<dot]) }
        return base
    }

    /// Writes atomically to `path`. `archiveName` defaults to the one torch would give `path`; pass the final
    /// name's when writing under a temporary name. `progress` receives tensor bytes as they are written.
    public static func write(_ tensors: [TensorPlan], to path: String, archiveName: String? = nil,
                             progress: ((Int) -> Void)? = nil) throws {
        guard Set(tensors.map(\.name)).count == tensors.count else {
            throw BillaError(.invalidArgument, file: path, "two tensors share a name", remedy: "rename one of them")
        }
        let pickle: [UInt8]
        do { pickle = try TorchPickleWriter.stateDict(tensors.map { ($0.name, $0.dtype, $0.shape) }) } catch let e as BillaError { throw e.inFile(path) }
        let out = try AtomicFileWriter(path: path)
        var zip = TorchZipStream(out: out, archiveName: archiveName ?? Self.archiveName(for: path))
        try zip.add("data.pkl", bytes: pickle)
        try zip.add(".format_version", bytes: Array(Records.formatVersion.utf8))
        try zip.add(".storage_alignment", bytes: Array(Records.storageAlignment.utf8))
        try zip.add("byteorder", bytes: Array(Records.byteOrder.utf8))
        for (key, t) in tensors.enumerated() {
            StatusLine.item(t.name)
            do {
                try zip.add("data/\(key)", size: t.byteCount) { emit in
                    try t.bytes { piece in
                        try emit(piece)
                        progress?(piece.count)
                    }
                }
            } catch let e as BillaError {
                throw e.forTensor(t.name)
            }
        }
        try zip.add("version", bytes: Array(Records.version.utf8))
        let id = TorchHash.serializationID(names: zip.names, combinedCRC: zip.combinedDescriptorCRC)
        try zip.add(".data/serialization_id", bytes: Array(id.utf8))
        try zip.finish()
        try out.commit()
    }
}
