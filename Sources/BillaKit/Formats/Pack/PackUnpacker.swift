import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a pack back out as safetensors or a Hugging Face directory, bit-exact: every tensor's bytes are the dense
/// bytes that went in (each decoded chunk checked against its hash on the way).
public enum Unpacker {
    public enum Target: String, Sendable, CaseIterable {
        case safetensors, hf, meta, gguf
    }

    public static func unpack(_ pack: PackFile, to target: Target, output: String, quiet: Bool = true) throws {
        if target != .gguf, let q = pack.tensors.first(where: { $0.dtype.isQuantized }) {
            throw BillaError(.unsupported, file: pack.path, tensor: q.name,
                             "the pack holds \(q.dtype.rawValue) tensors; safetensors, Hugging Face and Meta files hold only plain dtypes",
                             remedy: "unpack it with --to gguf")
        }
        switch target {
        case .gguf: try writeGGUF(pack, to: output, quiet: quiet)
        case .safetensors: try writeSafetensors(pack, to: output, quiet: quiet)
        case .hf: try writeHuggingFace(pack, to: output, quiet: quiet)
        case .meta: try writeMeta(pack, to: output, quiet: quiet)
        }
    }

    /// A Meta release. A pack made from one is written back file for file (consolidated.NN.pth via `TorchWriter`,
    /// params.json and the tokenizer from the blobs); a pack of a Hugging Face directory goes through the
    /// HF -> Meta `Converter` (which reads the pack like any release, tokenizer blob included).
    static func writeMeta(_ pack: PackFile, to output: String, quiet: Bool) throws {
        let meter = ProgressMeter(label: "unpacking", total: pack.tensors.reduce(0) { $0 + $1.byteCount }, quiet: quiet)
        defer { meter.finish() }
        if pack.metadata.source.layout == ReleaseLayout.huggingFace.rawValue {
            try Converter.plan(source: pack.path, destination: output, options: ConvertOptions(target: .meta)).execute(progress: meter)
            return
        }
        guard pack.metadata.source.layout == ReleaseLayout.meta.rawValue else {
            throw BillaError(.unsupported, file: pack.path, "this pack was made from a single tensor file, not a model directory; there is no Meta release to rebuild",
                             remedy: "unpack with --to safetensors")
        }
        try intoNewDirectory(output) { temp in
            for (i, f) in pack.tensorFiles.enumerated() {
                let name = pack.metadata.groups[i].name
                try TorchWriter.write(plans(f.tensors), to: temp + "/" + name, archiveName: TorchWriter.archiveName(for: name)) { meter.add($0) }
            }
            try writeBlobs(pack, pack.blobs.map(\.name), into: temp)
        }
    }

    /// The GGUF a pack of GGUF tensors was made from (`quantize --format pack`, `pack --quantize`, `pack FILE.gguf`):
    /// its stored metadata and every tensor as stored, in order; the bytes `billa quantize` writes straight to GGUF.
    static func writeGGUF(_ pack: PackFile, to output: String, quiet: Bool) throws {
        guard let stored = try PackGGUF.metadata(of: pack) else {
            throw BillaError(.unsupported, file: pack.path, "this pack carries no GGUF metadata (\(PackGGUF.blobName)): it was not made from a GGUF or by quantizing",
                             remedy: "convert it instead: billa convert \(pack.path) -o OUT.gguf --to gguf")
        }
        guard !FileManager.default.fileExists(atPath: output) else {
            throw BillaError(.invalidArgument, file: output, "already exists", remedy: "choose another output path or remove it")
        }
        let meter = ProgressMeter(label: "unpacking", total: pack.tensors.reduce(0) { $0 + $1.byteCount }, quiet: quiet)
        try GGUFWriter.write(metadata: stored, tensors: plans(pack.tensors), to: output) { meter.add($0) }
        meter.finish()
    }

    static func writeBlobs(_ pack: PackFile, _ names: [String], into dir: String) throws {
        for name in names {
            guard let bytes = try pack.blob(named: name) else { continue }
            let w = try AtomicFileWriter(path: dir + "/" + name)
            try w.write(bytes)
            try w.commit()
        }
    }

    /// Runs `body` on a temporary directory beside `output` and renames it to `output` when it succeeds, so a failed
    /// unpack leaves nothing behind.
    static func intoNewDirectory(_ output: String, _ body: (String) throws -> Void) throws {
        if FileManager.default.fileExists(atPath: output), !OutputGuard.mayReplace(output) { throw OutputGuard.existing(output) }
        let temp = try Temporaries.makeDirectory(for: output)
        do {
            try body(temp)
            try Temporaries.install(temp, at: output)
        } catch {
            Temporaries.discardDirectory(temp)
            throw error
        }
    }

    static func plans(_ tensors: [Tensor]) -> [TensorPlan] { tensors.map { TensorPlan(copying: $0) } }

    /// Safetensors metadata for the output: the source file's own when there was exactly one, else transformers'.
    static func safetensorsMetadata(_ pack: PackFile) -> [String: String] {
        if pack.metadata.groups.count == 1, let m = pack.metadata.groups[0].safetensorsMetadata { return m }
        return ["format": "pt"]
    }

    static func writeSafetensors(_ pack: PackFile, to output: String, quiet: Bool) throws {
        let names = pack.tensors.map(\.name)
        guard Set(names).count == names.count else {
            throw BillaError(.invalidArgument, file: pack.path, "the pack holds model-parallel shards that repeat tensor names; one safetensors file cannot hold them",
                             remedy: "unpack with --to meta, or merge the shards first")
        }
        let meter = ProgressMeter(label: "unpacking", total: pack.tensors.reduce(0) { $0 + $1.byteCount }, quiet: quiet)
        try SafetensorsWriter.write(plans(pack.tensors), metadata: safetensorsMetadata(pack), to: output) { meter.add($0) }
        meter.finish()
    }

    /// A Hugging Face directory: the source's safetensors files under their own names (or model.safetensors /
    /// model-0000i-of-0000n.safetensors for .bin sources) and the config and tokenizer blobs. Written into a
    /// temporary directory beside `output` and renamed into place. A pack of a Meta release has no HF files to
    /// restore, so it goes through the Meta -> HF `Converter`, exactly as `billa convert PACK --to hf` would.
    static func writeHuggingFace(_ pack: PackFile, to output: String, quiet: Bool) throws {
        if pack.metadata.source.layout == ReleaseLayout.meta.rawValue {
            let meter = ProgressMeter(label: "unpacking", total: pack.tensors.reduce(0) { $0 + $1.byteCount }, quiet: quiet)
            defer { meter.finish() }
            try Converter.plan(source: pack.path, destination: output, options: ConvertOptions(target: .hf)).execute(progress: meter)
            return
        }
        guard pack.blobs.contains(where: { $0.name == "config.json" }) else {
            throw BillaError(.unsupported, file: pack.path, "this pack has no config.json (it was packed from a single tensor file), so it cannot become a Hugging Face directory",
                             remedy: "unpack with --to safetensors, or pack the Hugging Face directory instead of its weights file")
        }
        let groups = pack.metadata.groups
        let files = pack.tensorFiles
        let allSafetensors = groups.allSatisfy { $0.format == ContainerFormat.safetensors.rawValue && $0.name.hasSuffix(".safetensors") }
        var outputs = [(name: String, tensors: [Tensor], metadata: [String: String])]()
        for (i, f) in files.enumerated() {
            let name: String
            if allSafetensors, i < groups.count { name = groups[i].name }
            else if files.count == 1 { name = "model.safetensors" }
            else { name = String(format: "model-%05d-of-%05d.safetensors", i + 1, files.count) }
            let meta = (i < groups.count ? groups[i].safetensorsMetadata : nil) ?? ["format": "pt"]
            outputs.append((name, f.tensors, meta))
        }
        var blobNames = pack.blobs.map(\.name)
        if !allSafetensors { blobNames.removeAll { $0.hasSuffix(".index.json") } }

        try intoNewDirectory(output) { temp in
            let meter = ProgressMeter(label: "unpacking", total: pack.tensors.reduce(0) { $0 + $1.byteCount }, quiet: quiet)
            for o in outputs {
                try SafetensorsWriter.write(plans(o.tensors), metadata: o.metadata, to: temp + "/" + o.name) { meter.add($0) }
            }
            meter.finish()
            if outputs.count > 1 && !allSafetensors {
                try writeIndex(outputs.map { ($0.name, $0.tensors) }, to: temp + "/model.safetensors.index.json")
            }
            try writeBlobs(pack, blobNames, into: temp)
        }
    }

    /// transformers' index layout: `{"metadata": {"total_size": n}, "weight_map": {...}}`, keys sorted, indent 2.
    static func writeIndex(_ shards: [(String, [Tensor])], to path: String) throws {
        var map = [(String, String)]()
        var total = 0
        for (name, tensors) in shards {
            for t in tensors { map.append((t.name, name)); total += t.byteCount }
        }
        map.sort { $0.0 < $1.0 }
        var text = "{\n  \"metadata\": {\n    \"total_size\": \(total)\n  },\n  \"weight_map\": {\n"
        text += map.map { "    \(JSONText.quote($0.0)): \(JSONText.quote($0.1))" }.joined(separator: ",\n")
        text += "\n  }\n}\n"
        let w = try AtomicFileWriter(path: path)
        try w.write(Array(text.utf8))
        try w.commit()
    }
}
