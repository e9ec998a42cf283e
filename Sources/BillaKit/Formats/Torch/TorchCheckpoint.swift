/// Reads a checkpoint written by `torch.save` (zip container, torch >= 1.6): `<prefix>/data.pkl` describes the
/// tensors, `<prefix>/data/<key>` holds each storage's raw little-endian bytes.
///
/// Everything is validated on open: the archive, the pickle (allowlist only), every storage's existence and size,
/// and every tensor's extent inside its storage. After that, dense tensors are zero-copy slices of the map.
public enum TorchCheckpoint {
    /// Nesting deeper than this in data.pkl is refused rather than recursed into.
    static let maxNesting = 32

    public static func open(_ path: String) throws -> TensorFile {
        try open(MappedFile(path: path))
    }

    public static func open(_ file: MappedFile) throws -> TensorFile {
        let archive = try ZipArchive(file: file)
        let path = file.path
        let pickles = archive.entries.filter { $0.name.hasSuffix("data.pkl") && $0.name.split(separator: "/").count == 2 }
        guard pickles.count == 1, let pickle = pickles.first else {
            throw BillaError(.unknownFormat, file: path,
                             pickles.isEmpty ? "the zip archive has no <name>/data.pkl, so torch.save did not write it"
                                             : "the zip archive has \(pickles.count) data.pkl members",
                             remedy: "pass a checkpoint written by torch.save (.pth / .bin)")
        }
        let prefix = String(pickle.name.dropLast("data.pkl".count))
        if let order = archive.entry(named: prefix + "byteorder") {
            let text = String(decoding: try archive.bytes(of: order), as: UTF8.self)
            guard text == "little" else {
                throw BillaError(.unsupported, file: path, "the checkpoint was saved on a \(text)-endian machine",
                                 remedy: "load and re-save it with torch on a little-endian machine")
            }
        }

        var storages = [String: (TorchStorageRef, ZipEntry)]()
        var machine = PickleMachine(file: path) { pid in
            // ('storage', storage_type, key, location, numel)
            guard pid.count == 5, case .string("storage") = pid[0], case .global(.storageType(let dtype)) = pid[1],
                  case .string(let key) = pid[2], case .int(let numel) = pid[4], numel >= 0 else {
                throw BillaError(.hostilePickle, file: path, "data.pkl has a persistent id that is not a torch storage",
                                 remedy: "the checkpoint is corrupt or not written by torch.save; download it again")
            }
            guard let entry = archive.entry(named: prefix + "data/" + key) else {
                throw BillaError(.corruptContainer, file: path, "storage '\(key)' named in data.pkl is missing from the archive",
                                 remedy: "the file is truncated or corrupt; download it again")
            }
            let (need, overflow) = numel.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, need <= entry.size else {
                throw BillaError(.corruptContainer, file: path,
                                 "storage '\(key)' should hold \(numel) \(dtype.rawValue) elements but has \(entry.size) bytes",
                                 remedy: "the file is truncated or corrupt; download it again")
            }
            let ref = TorchStorageRef(dtype: dtype, key: key, elementCount: numel)
            storages[key] = (ref, entry)
            return .storage(ref)
        }
        let pickleBytes = try archive.bytes(of: pickle)
        let root = try machine.run(pickleBytes)

        var found = [(String, TorchTensorRef)]()
        var budget = flattenBudget(pickleBytes: pickleBytes.count)
        try flatten(root, prefix: "", depth: 0, into: &found, budget: &budget, path: path)
        let tensors = try found.map { name, ref -> Tensor in
            guard let (_, entry) = storages[ref.storage.key] else {
                throw BillaError(.corruptContainer, file: path, tensor: name, "refers to an unknown storage", remedy: "")
            }
            return try makeTensor(name: name, ref: ref, entry: entry, file: file)
        }
        return TensorFile(path: path, format: .torchZip, tensors: tensors)
    }

    /// How many values the flattening may visit. A pickle builds each value with at least one opcode byte, so a walk
    /// that visits each once stays under the pickle's size; only containers shared through the memo are visited
    /// again at every reference, and lists of lists shared at each level double the walk per level (2^30 visits
    /// from 531 bytes). Four visits per pickle byte is far more than any state dict needs (tied weights share
    /// tensors, which are leaves). A visit also pays for the dotted name it builds (one unit per 16 bytes), so long
    /// keys shared at many levels cannot make gigabytes of names either.
    static func flattenBudget(pickleBytes: Int) -> Int { 4 * pickleBytes + 1024 }

    /// State dicts are usually flat; nested dicts (e.g. {"model": state_dict}) are flattened with dotted names.
    /// Non-tensor leaves (ints, strings, optimizer settings) carry no weights and are skipped.
    private static func flatten(_ v: PickleValue, prefix: String, depth: Int, into out: inout [(String, TorchTensorRef)],
                                budget: inout Int, path: String) throws {
        guard depth <= maxNesting else {
            throw BillaError(.hostilePickle, file: path, "data.pkl nests dicts deeper than \(maxNesting) levels",
                             remedy: "re-save a flat state dict with torch.save")
        }
        budget -= 1 + prefix.utf8.count / 16
        guard budget >= 0 else {
            throw BillaError(.hostilePickle, file: path,
                             "data.pkl reaches more values than a pickle of its size can hold: containers shared through the memo are referenced again and again",
                             remedy: "the checkpoint is corrupt or hostile; re-save a plain state dict with torch.save")
        }
        switch v {
        case .tensor(let t):
            out.append((prefix.isEmpty ? "tensor" : prefix, t))
        case .dict(let d):
            for (k, value) in zip(d.keys, d.values) {
                let key: String
                switch k {
                case .string(let s): key = s
                case .int(let i): key = String(i)
                default: continue
                }
                try flatten(value, prefix: prefix.isEmpty ? key : prefix + "." + key, depth: depth + 1, into: &out, budget: &budget, path: path)
            }
        case .list(let l):
            for (i, value) in l.items.enumerated() {
                try flatten(value, prefix: prefix.isEmpty ? String(i) : prefix + "." + String(i), depth: depth + 1, into: &out, budget: &budget, path: path)
            }
        default:
            break
        }
    }

    private static func makeTensor(name: String, ref: TorchTensorRef, entry: ZipEntry, file: MappedFile) throws -> Tensor {
        let dtype = ref.storage.dtype
        guard let count = Shape.elementCount(ref.shape), Shape.byteCount(ref.shape, dtype) != nil else {
            throw BillaError(.shapeMismatch, file: file.path, tensor: name,
                             "shape \(Shape.describe(ref.shape)) overflows", remedy: "the checkpoint is corrupt; download it again")
        }
        // The first element must lie in the storage (torch allows an empty view at offset == numel), so the byte
        // offset below cannot overflow: the storage's bytes were checked against its zip entry.
        guard ref.elementOffset <= ref.storage.elementCount else {
            throw BillaError(.outOfBounds, file: file.path, tensor: name,
                             "storage offset \(ref.elementOffset) is past the end of a storage holding \(ref.storage.elementCount) elements",
                             remedy: "the checkpoint is truncated or corrupt; download it again")
        }
        if count > 0 {
            // The furthest element the view reaches must lie inside the storage.
            var last = ref.elementOffset
            for (d, s) in zip(ref.shape, ref.strides) {
                let (p, o1) = (d - 1).multipliedReportingOverflow(by: s)
                let (q, o2) = last.addingReportingOverflow(p)
                guard !o1, !o2 else {
                    throw BillaError(.outOfBounds, file: file.path, tensor: name, "strides overflow", remedy: "the checkpoint is corrupt")
                }
                last = q
            }
            guard last < ref.storage.elementCount else {
                throw BillaError(.outOfBounds, file: file.path, tensor: name,
                                 "shape \(Shape.describe(ref.shape)) at offset \(ref.elementOffset) reaches element \(last) of a storage holding \(ref.storage.elementCount)",
                                 remedy: "the checkpoint is truncated or corrupt; download it again")
            }
            // A view whose strides repeat elements (stride 0, as expand() makes, or overlapping strides) would be
            // gathered into more bytes than its storage holds; the dense form of a view is bounded by its storage,
            // so a tiny file can never make a reader allocate terabytes.
            guard count <= ref.storage.elementCount else {
                throw BillaError(.unsupported, file: file.path, tensor: name,
                                 "the view \(Shape.describe(ref.shape)) (strides \(ref.strides.map(String.init).joined(separator: ", "))) has \(count) elements but its storage holds only \(ref.storage.elementCount): it repeats elements (stride 0 or overlapping strides)",
                                 remedy: "save the tensor with .contiguous() (or .clone()) in torch, then convert")
            }
        }
        let contiguous = zip(zip(ref.shape, ref.strides), Shape.contiguousStrides(ref.shape)).allSatisfy { pair, expected in
            pair.0 <= 1 || pair.1 == expected
        }
        let layout: TensorLayout = contiguous
            ? .dense(byteOffset: entry.dataOffset + ref.elementOffset * dtype.size)
            : .strided(storageByteOffset: entry.dataOffset, elementOffset: ref.elementOffset, strides: ref.strides)
        return Tensor(name: name, dtype: dtype, shape: ref.shape, file: file, layout: layout)
    }
}
