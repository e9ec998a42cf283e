import Foundation
import Testing
@testable import BillaKit

/// Every command's `--json`, run through the binary on the fixtures and checked against formats/json.schema.json
/// (formats/json.md): unknown keys, missing keys and wrong types all fail.
@Suite("JSON reports follow formats/json.schema.json")
struct JSONSchemaTests {
    let cli = CLITests()

    static let schemaPath = URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent().deletingLastPathComponent().path + "/formats/json.schema.json"

    static func schema() throws -> JSONValue {
        try JSONParser.parse(String(contentsOfFile: schemaPath, encoding: .utf8))
    }

    /// One run: the arguments (OUT is replaced by a fresh temporary directory's path), the $defs entry its report
    /// must match, the exit status it must have and, for JSON Lines output, standard input.
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let schema: String
        let args: [String]
        var status: Int32 = 0
        var stdin: String? = nil
        var testDescription: String { name }
    }

    static let meta = Fixtures.path("tiny-meta"), hf = Fixtures.path("tiny-hf-st"), llamaTok = Fixtures.path("tokenizers/llama-tokenizer.model")
    static let ppl = Fixtures.path("perplexity")
    static let rb = Fixtures.path("recover/billa"), xor = Fixtures.path("recover/xor"), lora = Fixtures.path("lora")

    static let cases: [Case] = [
        Case(name: "inspect meta", schema: "inspect", args: ["inspect", meta, "--json"]),
        Case(name: "inspect imatrix", schema: "inspect_imatrix", args: ["inspect", Fixtures.path("imatrix/imatrix.gguf"), "--json"]),
        Case(name: "inspect imatrix .dat", schema: "inspect_imatrix", args: ["inspect", Fixtures.path("imatrix/imatrix.dat"), "--json"]),
        Case(name: "inspect pack", schema: "inspect", args: ["inspect", Fixtures.path("pack/tiny-hf-st.billa"), "--json"]),
        Case(name: "inspect qwen2", schema: "inspect", args: ["inspect", Fixtures.path("families/qwen2"), "--json"]),
        Case(name: "inspect mistral", schema: "inspect", args: ["inspect", Fixtures.path("families/mistral-meta"), "--json"]),
        Case(name: "checksum", schema: "checksum", args: ["checksum", meta + "/params.json", meta + "/tokenizer.model", "--json"]),
        Case(name: "checksum --per-tensor", schema: "checksum_per_tensor", args: ["checksum", "--per-tensor", hf, "--json"]),
        Case(name: "checksum --check", schema: "checksum_check", args: ["checksum", "--check", meta + "/checklist.chk", "--json"]),
        Case(name: "tokenize TEXT", schema: "tokenize", args: ["tokenize", llamaTok, "Hello 世界", "--json"]),
        Case(name: "tokenize stdin", schema: "tokenize", args: ["tokenize", llamaTok, "--json"], stdin: "Hello\n世界\n"),
        Case(name: "tokenize --count", schema: "tokenize_count", args: ["tokenize", llamaTok, "--count", "--json"], stdin: "Hello\n世界\n"),
        Case(name: "vocab audit", schema: "vocab_audit", args: ["vocab", "audit", hf, "--corpus", Fixtures.path("tokenizer/corpus-zh.jsonl"),
                                                                "--against", llamaTok, "--json"]),
        Case(name: "vocab audit (inconsistent)", schema: "vocab_audit", args: ["vocab", "audit", Fixtures.path("mismatch"), "--json"], status: 1),
        Case(name: "vocab merge", schema: "vocab_merge", args: ["vocab", "merge", llamaTok, Fixtures.path("tokenizers/chinese_sp.model"),
                                                                "-o", "OUT/merged.model", "--add-pad", "--json"]),
        Case(name: "vocab resize", schema: "vocab_resize", args: ["vocab", "resize", hf, "--tokenizer", llamaTok, "-o", "OUT/r", "--json"]),
        Case(name: "vocab resize --dry-run", schema: "vocab_resize", args: ["vocab", "resize", hf, "--tokenizer", llamaTok, "-o", "OUT/r", "--dry-run", "--json"]),
        Case(name: "convert --to hf", schema: "convert_directory", args: ["convert", meta, "-o", "OUT/hf", "--to", "hf", "--json"]),
        Case(name: "convert --to hf --dry-run", schema: "convert_directory", args: ["convert", meta, "-o", "OUT/hf", "--to", "hf", "--dry-run", "--json"]),
        Case(name: "convert --to meta", schema: "convert_directory", args: ["convert", hf, "-o", "OUT/meta", "--to", "meta", "--shards", "2", "--json"]),
        Case(name: "convert --to hf --dtype (HF source)", schema: "convert_directory", args: ["convert", hf, "-o", "OUT/f32", "--to", "hf", "--dtype", "f32", "--json"]),
        Case(name: "convert --to gguf", schema: "gguf_export", args: ["convert", meta, "-o", "OUT/m.gguf", "--to", "gguf", "--json"]),
        Case(name: "convert --to gguf --dry-run", schema: "gguf_export", args: ["convert", meta, "-o", "OUT/m.gguf", "--to", "gguf", "--dtype", "q8_0", "--dry-run", "--json"]),
        Case(name: "recover billa", schema: "recover_billa", args: ["recover", "billa", "--release", rb + "/release", "--llama", rb + "/llama/consolidated.00.pth",
                                                                    "-o", "OUT/b", "--expect-sum", "1.767326533794403", "--json"]),
        Case(name: "recover billa --dry-run", schema: "recover_billa_dry_run", args: ["recover", "billa", "--release", rb + "/release", "--llama",
                                                                                      rb + "/llama/consolidated.00.pth", "-o", "OUT/b", "--dry-run", "--json"]),
        Case(name: "recover delta", schema: "recover_delta", args: ["recover", "delta", "--base", hf, "--delta", Fixtures.path("recover/delta/delta"), "-o", "OUT/d", "--json"]),
        Case(name: "recover weight-diff", schema: "recover_weight_diff", args: ["recover", "weight-diff", "--raw", hf, "--diff", Fixtures.path("recover/weight-diff/diff"),
                                                                                "-o", "OUT/w", "--json"]),
        Case(name: "recover weight-diff --dry-run", schema: "recover_weight_diff_dry_run", args: ["recover", "weight-diff", "--raw", hf, "--diff",
                                                                                                  Fixtures.path("recover/weight-diff/diff"), "-o", "OUT/w", "--dry-run", "--json"]),
        Case(name: "recover xor", schema: "recover_xor", args: ["recover", "xor", xor + "/weights.bin.6f222eb4.enc", "--key", xor + "/key.bin", "-o", "OUT/x",
                                                                "--chunk-size", "4096", "--json"]),
        Case(name: "recover xor --dry-run", schema: "recover_xor_dry_run", args: ["recover", "xor", xor + "/weights.bin.6f222eb4.enc", "--key", xor + "/key.bin",
                                                                                  "-o", "OUT/x", "--dry-run", "--json"]),
        Case(name: "recover lora", schema: "recover_lora", args: ["recover", "lora", "--base", lora + "/base", lora + "/adapter-plain", "-o", "OUT/l", "--json"]),
        Case(name: "recover lora --dry-run", schema: "recover_lora", args: ["recover", "lora", "--base", lora + "/base", lora + "/adapter-plain", "-o", "OUT/l", "--dry-run", "--json"]),
        Case(name: "reshard --per-layer --dtype", schema: "reshard", args: ["reshard", hf, "-o", "OUT/p", "--per-layer", "--dtype", "f32", "--json"]),
        Case(name: "reshard --shards --dry-run", schema: "reshard", args: ["reshard", meta, "-o", "OUT/s", "--shards", "1", "--dry-run", "--json"]),
        Case(name: "quantize", schema: "gguf_export", args: ["quantize", "TINYGGUF", "-o", "OUT/q.gguf", "--type", "q8_0", "--json"]),
        Case(name: "quantize --dry-run", schema: "gguf_export", args: ["quantize", "TINYGGUF", "-o", "OUT/q.gguf", "--type", "q4_k_m", "--dry-run", "--json"]),
        Case(name: "quantize --format pack", schema: "pack_summary", args: ["quantize", meta, "-o", "OUT/q.billa", "--type", "q8_0", "--format", "pack", "--json"]),
        Case(name: "pack", schema: "pack_summary", args: ["pack", hf, "-o", "OUT/t.billa", "--json"]),
        Case(name: "unpack", schema: "unpack", args: ["unpack", Fixtures.path("pack/tiny-hf-st.billa"), "-o", "OUT/u", "--to", "hf", "--json"]),
        Case(name: "verify pair", schema: "verify", args: ["verify", meta, hf, "--prompt", "Hello world", "--json"]),
        Case(name: "verify pair (fails)", schema: "verify", args: ["verify", Fixtures.path("verify/trained"), hf, "--prompt", "Hello world", "--json"], status: 1),
        Case(name: "verify --trace (nothing diverges)", schema: "verify", args: ["verify", meta, hf, "--prompt", "Hello world", "--trace", "--json"]),
        Case(name: "verify --trace --all --trace-svg (diverges)", schema: "verify", args: ["verify", Fixtures.path("verify/trained"), hf, "--prompt", "Hello world",
                                                                                       "--prompt", "x", "--trace", "--all", "--trace-svg", "OUT/t.svg", "--json"], status: 1),
        Case(name: "verify MODEL", schema: "verify_model", args: ["verify", meta, "--prompt", "Hello world", "--json"]),
        Case(name: "verify --checksums", schema: "verify_checksums", args: ["verify", "--checksums", Fixtures.path("pack/tiny-hf-st.billa"), "--json"]),
        Case(name: "generate", schema: "generate", args: ["generate", meta, "--prompt", "Hello", "-n", "3", "--json"]),
        Case(name: "imatrix", schema: "imatrix", args: ["imatrix", Fixtures.path("verify/trained"), "-f", Fixtures.path("imatrix/text.txt"), "-c", "64",
                                                      "--chunks", "2", "-o", "OUT/i.gguf", "--json"]),
        Case(name: "perplexity (saving a base)", schema: "perplexity", args: ["perplexity", ppl + "/trained-f16.gguf", "-f", ppl + "/text.txt", "-c", "128",
                                                                              "--chunks", "2", "--kl-divergence-base", "OUT/b.kld", "--json"]),
        Case(name: "perplexity --kl-divergence", schema: "perplexity_kld", args: ["perplexity", ppl + "/trained-q4_0.gguf", "--kl-divergence-base",
                                                                                  ppl + "/base-f16.kld", "--kl-divergence", "--json"]),
        Case(name: "doctor (Meta original)", schema: "doctor", args: ["doctor", meta, "--json"]),
        Case(name: "doctor (LoRA adapter, a published tokenizer)", schema: "doctor", args: ["doctor", lora + "/adapter-zh", "--json"]),
        Case(name: "doctor (split GGUF)", schema: "doctor", args: ["doctor", Fixtures.path("gguf-split/q8_0-00002-of-00003.gguf"), "--json"]),
    ]

    @Test("each command's --json matches its schema", arguments: cases)
    func conforms(_ c: Case) throws {
        let root = try Self.schema()
        let def = try #require(root["$defs"]?[c.schema], "formats/json.schema.json has no $defs/\(c.schema)")
        let tmp = try TemporaryDirectory()
        let gguf = c.args.contains("TINYGGUF") ? try TinyGGUF.path.get() : ""
        let args = c.args.map { $0 == "TINYGGUF" ? gguf : $0.replacingOccurrences(of: "OUT/", with: tmp.path + "/") }
        let r = try cli.billa(args, stdin: c.stdin.map { Data($0.utf8) })
        #expect(r.status == c.status, "\(c.name): exit \(r.status): \(r.stderr)")
        // JSON Lines (tokenize over standard input) or one pretty-printed object.
        let documents = c.stdin != nil && !c.args.contains("--count") ? r.stdout.split(separator: "\n").map(String.init) : [r.stdout]
        #expect(!documents.isEmpty && !r.stdout.isEmpty, "\(c.name): no JSON on stdout")
        let validator = JSONSchemaValidator(root: root)
        for doc in documents {
            let value: JSONValue
            do { value = try JSONParser.parse(doc) } catch {
                Issue.record("\(c.name): stdout is not one JSON value (\(error)): \(doc.prefix(300))")
                continue
            }
            let problems = validator.errors(value, against: def)
            #expect(problems.isEmpty, "\(c.name): \(problems.prefix(8).joined(separator: "\n"))")
            let wantOK: Bool? = c.status == 0 ? true : (c.status == 1 ? false : nil)
            if case .bool(let ok)? = value["ok"] { #expect(ok == wantOK, "\(c.name): ok is \(ok) with exit \(r.status)") }
            if let out = args.firstIndex(of: "-o").map({ args[$0 + 1] }), case .string(let reported)? = value["output"] {
                #expect(reported == out, "\(c.name): output is \(reported), not -o \(out)")
            }
        }
    }

    @Test("every report definition is exercised, and every key in the schema is snake_case")
    func schemaIsCovered() throws {
        let root = try Self.schema()
        guard case .object(let defs)? = root["$defs"] else { Issue.record("no $defs"); return }
        let shared: Set = ["dtype", "plan_file", "vocab_check", "gguf_tensor", "script_counts", "coverage", "vocab_audit_report", "verify_trace", "verify_trace_point"]
        let used = Set(Self.cases.map(\.schema))
        for (name, _) in defs where !shared.contains(name) { #expect(used.contains(name), "$defs/\(name) is checked by no case") }
        func keys(_ v: JSONValue, _ path: String) -> [String] {
            switch v {
            case .object(let kv):
                var out = [String]()
                for (k, sub) in kv {
                    if k == "properties", case .object(let props) = sub {
                        for (p, s) in props {
                            if p.range(of: "^[a-z][a-z0-9_]*$", options: .regularExpression) == nil { out.append("\(path).\(p)") }
                            out += keys(s, "\(path).\(p)")
                        }
                    } else { out += keys(sub, "\(path).\(k)") }
                }
                return out
            case .array(let items): return items.flatMap { keys($0, path) }
            default: return []
            }
        }
        #expect(keys(root, "$").isEmpty, "keys that are not snake_case: \(keys(root, "$"))")
    }

    @Test("the validator rejects unknown keys, missing keys, wrong types and values outside an enum")
    func validatorFails() throws {
        let schema = try JSONParser.parse("""
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string", "enum": ["x"]},
             "c": {"type": "array", "items": {"type": "number"}}}, "required": ["a"], "additionalProperties": false}
            """)
        let v = JSONSchemaValidator(root: schema)
        func check(_ json: String) throws -> [String] { v.errors(try JSONParser.parse(json), against: schema) }
        #expect(try check(#"{"a": 1, "b": "x", "c": [1, 2.5]}"#).isEmpty)
        #expect(try check(#"{"a": 1, "d": 0}"#).contains { $0.contains("unknown key 'd'") })
        #expect(try check(#"{"b": "x"}"#).contains { $0.contains("missing required key 'a'") })
        #expect(try check(#"{"a": "1"}"#).contains { $0.contains("$.a: string") })
        #expect(try check(#"{"a": 1.5}"#).contains { $0.contains("$.a: number") })
        #expect(try check(#"{"a": true}"#).contains { $0.contains("$.a: boolean") })
        #expect(try check(#"{"a": 1, "b": "y"}"#).contains { $0.contains("enum") })
        #expect(try check(#"{"a": 1, "c": ["1"]}"#).contains { $0.contains("$.c[0]: string") })
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"{"a": 1, "a": 2}"#) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"[{"a": 1}][]"#) }
    }
}
