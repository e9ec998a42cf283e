import Foundation

/// BELLE's encrypted files, `<name>.<sha256 hex>.enc`: a 32-byte SHA-256 of the plain file, then the plain bytes
/// XOR-ed with LLaMA-7B's consolidated.00.pth. Only the headers are read; the name's checksum must start the header's.
enum DoctorBelle {
    static func diagnose(dir: String?, files: [String], _ ctx: ModelDoctor.Context) throws -> DoctorReport {
        var r = DoctorReport(path: dir ?? files.first ?? "", kind: .belleEncrypted,
                             title: "BELLE encrypted release (\(files.count) .enc file\(files.count == 1 ? "" : "s"), XOR with LLaMA-7B's consolidated.00.pth)")
        for f in files.sorted() {
            let name = (f as NSString).lastPathComponent
            let enc = try MappedFile(path: f)
            guard enc.size >= XorRecovery.hashSize else {
                r.error("\(name): \(enc.size) bytes, fewer than the 32-byte SHA-256 header: download it again")
                continue
            }
            let header = try enc.bytes(at: 0, count: XorRecovery.hashSize, what: "SHA-256 header").map { String(format: "%02x", $0) }.joined()
            let (out, inName) = XorRecovery.outputName(for: f)
            r.fact(name, "-> \(out), \(enc.size - XorRecovery.hashSize) bytes, must hash to \(header)")
            if let inName {
                if inName.isEmpty || !header.hasPrefix(inName.lowercased()) {
                    r.error("\(name): the checksum in its name (\(inName)) does not start the header's \(header): the file is damaged or renamed")
                }
            } else {
                r.warn("\(name): no <sha256>.enc in the name (BELLE names each file by its checksum)")
            }
        }
        if let key = ctx.options.published.first(where: { $0.model == "LLaMA-7B" && $0.file == "consolidated.00.pth" && $0.algorithm == .md5 }),
           let d = key.digest {
            r.note("the key is Meta's original LLaMA-7B consolidated.00.pth (md5 \(d), \(key.source)); check yours with billa doctor LLAMA-7B")
        }
        let inputs = files.sorted().map(ModelDoctor.shellQuoted).joined(separator: " ")
        let out = dir.map { ModelDoctor.outputName($0, "-decrypted") } ?? "DECRYPTED"
        r.next.append("billa recover xor --key LLAMA-7B/consolidated.00.pth \(inputs) -o \(out) --dry-run")
        r.next.append("billa recover xor --key LLAMA-7B/consolidated.00.pth \(inputs) -o \(out)")
        return r
    }
}
