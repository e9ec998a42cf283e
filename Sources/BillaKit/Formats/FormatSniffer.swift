/// Recognises a file by its first bytes, never by its name: a `.bin` may be a torch zip or a safetensors file, and a
/// `.pth` may be the pre-1.6 legacy format that needs a different remedy.
public enum FormatSniffer {
    public static func detect(_ file: MappedFile) -> ContainerFormat? {
        let b = file.all
        func at(_ i: Int) -> UInt8? { i < b.count ? b[i] : nil }
        if b.count >= 4, at(0) == 0x50, at(1) == 0x4B, (at(2) == 3 && at(3) == 4) || (at(2) == 5 && at(3) == 6) {
            return .torchZip
        }
        // Pickle protocol 2, then LONG1 of 10 bytes: the magic number that opens every legacy torch.save file.
        if at(0) == 0x80, at(1) == 0x02, at(2) == 0x8A, at(3) == 0x0A { return .legacyTorch }
        // The pre-pickle tar format of torch < 0.4.
        if b.count > 262, Array(b[257..<262]) == Array("ustar".utf8) { return .legacyTorch }
        if b.count >= 4, Array(b[0..<4]) == Array("GGUF".utf8) { return .gguf }
        if b.count >= 8, Array(b[0..<8]) == PackLayout.headerMagic { return .billaPack }
        // safetensors: a u64 header length, then the JSON header's '{'. The reader judges the length.
        if b.count >= 9, at(8) == UInt8(ascii: "{") { return .safetensors }
        if b.count >= 2, at(0) == 0x0A { return .sentencePiece }   // ModelProto opens with field 1 (pieces)
        return nil
    }

    /// Opens any tensor file billa reads, choosing the reader from the content.
    public static func openTensorFile(_ path: String) throws -> TensorFile {
        let file = try MappedFile(path: path)
        switch detect(file) {
        case .torchZip: return try TorchCheckpoint.open(file)
        case .safetensors: return try SafetensorsReader.open(file)
        case .billaPack:
            let pack = try PackReader.open(file)
            return TensorFile(path: path, format: .billaPack, tensors: pack.tensors, metadata: pack.tensorFiles.first?.metadata ?? [:])
        case .legacyTorch:
            throw BillaError(.unsupported, file: path, "this is a legacy (pre-1.6, non-zip) torch.save file",
                             remedy: "re-save it with a current torch: torch.save(torch.load(path, weights_only=True), new_path)")
        case .gguf: return try GGUFReader.open(file).tensorFile
        case .sentencePiece:
            throw BillaError(.unknownFormat, file: path, "this looks like a SentencePiece tokenizer, not a weights file",
                             remedy: "pass the model directory or a .pth / .bin / .safetensors file")
        case nil:
            if file.size == 0 {
                throw BillaError(.unknownFormat, file: path, "the file is empty", remedy: "download it again")
            }
            // The content matched nothing; the name picks which reader explains what is wrong with it.
            if path.hasSuffix(".safetensors") { return try SafetensorsReader.open(file) }
            if path.hasSuffix("." + PackLayout.fileExtension) { _ = try PackReader.open(file) }
            if path.hasSuffix(".pth") || path.hasSuffix(".bin") || path.hasSuffix(".pt") {
                return try TorchCheckpoint.open(file)
            }
            throw BillaError(.unknownFormat, file: path, "not a PyTorch zip checkpoint, safetensors or GGUF file",
                             remedy: "pass a .pth / .bin written by torch.save, a .safetensors file, or a model directory")
        }
    }
}
