/// The `data.pkl` that `torch.save(OrderedDict)` writes with pickle protocol 2, reproduced opcode for opcode:
/// Python's pickler memoizes every global, string and non-empty tuple (BINPUT, then LONG_BINPUT past 255), refers
/// back to the repeated ones ('storage', 'cpu', the storage class, `_rebuild_tensor_v2`) with BINGET, and sets items
/// in batches of 1000. Each tensor gets its own storage, keyed "0", "1", ... in dict order.
struct TorchPickleWriter {
    private enum Op {
        static let proto: UInt8 = 0x80, global: UInt8 = 0x63, binput: UInt8 = 0x71, longBinput: UInt8 = 0x72
        static let binget: UInt8 = 0x68, longBinget: UInt8 = 0x6A, emptyTuple: UInt8 = 0x29, reduce: UInt8 = 0x52
        static let mark: UInt8 = 0x28, tuple: UInt8 = 0x74, tuple1: UInt8 = 0x85, tuple2: UInt8 = 0x86, tuple3: UInt8 = 0x87
        static let binunicode: UInt8 = 0x58, binint1: UInt8 = 0x4B, binint2: UInt8 = 0x4D, binint: UInt8 = 0x4A
        static let long1: UInt8 = 0x8A, newFalse: UInt8 = 0x89, binpersid: UInt8 = 0x51
        static let setitem: UInt8 = 0x73, setitems: UInt8 = 0x75, stop: UInt8 = 0x2E
    }
    /// Python's `Pickler._BATCHSIZE`.
    static let batchSize = 1000

    private var out: [UInt8] = []
    private var memoCount = 0
    /// Memo slots of objects pickled once and referred to again.
    private var memo: [String: Int] = [:]

    /// The whole data.pkl for tensors in dict order; storage keys are their indices.
    static func stateDict(_ tensors: [(name: String, dtype: DType, shape: [Int])]) throws -> [UInt8] {
        var w = TorchPickleWriter()
        w.out = [Op.proto, 2]
        w.globalRef("collections", "OrderedDict")
        w.out.append(Op.emptyTuple)
        w.out.append(Op.reduce)
        w.put()
        var index = 0
        while index < tensors.count {
            let batch = tensors[index..<min(index + batchSize, tensors.count)]
            if batch.count > 1 { w.out.append(Op.mark) }
            for (i, t) in zip(batch.indices, batch) { try w.tensor(t.name, t.dtype, t.shape, key: i) }
            w.out.append(batch.count > 1 ? Op.setitems : Op.setitem)
            index += batch.count
            if batch.count < batchSize { break }
        }
        w.out.append(Op.stop)
        return w.out
    }

    private mutating func tensor(_ name: String, _ dtype: DType, _ shape: [Int], key: Int) throws {
        guard let storage = TorchStorageTypes.name(for: dtype) else {
            throw BillaError(.unsupported, tensor: name, "torch has no storage type for \(dtype.rawValue)",
                             remedy: "write this tensor to safetensors instead (--format safetensors)")
        }
        string(name)
        globalRef("torch._utils", "_rebuild_tensor_v2")
        out.append(Op.mark)
        // persistent id: ('storage', torch.<T>Storage, key, 'cpu', numel)
        out.append(Op.mark)
        sharedString("storage")
        globalRef("torch", storage)
        string(String(key))
        sharedString("cpu")
        int(shape.reduce(1, *))
        out.append(Op.tuple)
        put()
        out.append(Op.binpersid)
        int(0)                                                  // storage offset
        intTuple(shape)
        intTuple(Shape.contiguousStrides(shape))
        out.append(Op.newFalse)                                 // requires_grad
        globalRef("collections", "OrderedDict")                 // backward hooks: OrderedDict()
        out.append(Op.emptyTuple)
        out.append(Op.reduce)
        put()
        out.append(Op.tuple)
        put()
        out.append(Op.reduce)
        put()
    }

    private mutating func put() {
        if memoCount < 256 {
            out += [Op.binput, UInt8(memoCount)]
        } else {
            out.append(Op.longBinput)
            withUnsafeBytes(of: UInt32(memoCount).littleEndian) { out.append(contentsOf: $0) }
        }
        memoCount += 1
    }

    private mutating func get(_ slot: Int) {
        if slot < 256 {
            out += [Op.binget, UInt8(slot)]
        } else {
            out.append(Op.longBinget)
            withUnsafeBytes(of: UInt32(slot).littleEndian) { out.append(contentsOf: $0) }
        }
    }

    /// A global is pickled once and then fetched from the memo.
    private mutating func globalRef(_ module: String, _ name: String) {
        let key = "g:" + module + "." + name
        if let slot = memo[key] { get(slot); return }
        out.append(Op.global)
        out += Array((module + "\n" + name + "\n").utf8)
        memo[key] = memoCount
        put()
    }

    /// Strings that are one object in torch's pickler (interned literals) are memoized across tensors.
    private mutating func sharedString(_ s: String) {
        let key = "s:" + s
        if let slot = memo[key] { get(slot); return }
        memo[key] = memoCount
        string(s)
    }

    private mutating func string(_ s: String) {
        let bytes = Array(s.utf8)
        out.append(Op.binunicode)
        withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { out.append(contentsOf: $0) }
        out += bytes
        put()
    }

    private mutating func int(_ v: Int) {
        if v >= 0 && v <= 0xFF {
            out += [Op.binint1, UInt8(v)]
        } else if v >= 0 && v <= 0xFFFF {
            out.append(Op.binint2)
            withUnsafeBytes(of: UInt16(v).littleEndian) { out.append(contentsOf: $0) }
        } else if v >= -0x8000_0000 && v <= 0x7FFF_FFFF {
            out.append(Op.binint)
            withUnsafeBytes(of: Int32(v).littleEndian) { out.append(contentsOf: $0) }
        } else {
            // LONG1: minimal two's-complement little-endian bytes, as Python's encode_long.
            var bytes = withUnsafeBytes(of: Int64(v).littleEndian) { Array($0) }
            while bytes.count > 1 {
                let last = bytes[bytes.count - 1], prev = bytes[bytes.count - 2]
                if (last == 0 && prev & 0x80 == 0) || (last == 0xFF && prev & 0x80 != 0) { bytes.removeLast() } else { break }
            }
            out += [Op.long1, UInt8(bytes.count)] + bytes
        }
    }

    private mutating func intTuple(_ values: [Int]) {
        switch values.count {
        case 0: out.append(Op.emptyTuple); return     // the empty tuple is a singleton and never memoized
        case 1: int(values[0]); out.append(Op.tuple1)
        case 2: int(values[0]); int(values[1]); out.append(Op.tuple2)
        case 3: values.forEach { int($0) }; out.append(Op.tuple3)
        default: out.append(Op.mark); values.forEach { int($0) }; out.append(Op.tuple)
        }
        put()
    }
}

/// The hashes torch's stream writer folds into `.data/serialization_id`: c10::hash_combine, and libstdc++'s
/// std::hash<std::string> (_Hash_bytes, seed 0xc70f6907).
enum TorchHash {
    static func combine(_ seed: UInt64, _ value: UInt64) -> UInt64 {
        seed ^ (value &+ 0x9e37_79b9 &+ (seed << 6) &+ (seed >> 2))
    }

    static func string(_ s: String) -> UInt64 {
        let bytes = Array(s.utf8)
        let mul: UInt64 = (0xc6a4_a793 << 32) &+ 0x5bd1_e995
        func shiftMix(_ v: UInt64) -> UInt64 { v ^ (v >> 47) }
        var hash: UInt64 = 0xc70f_6907 ^ (UInt64(bytes.count) &* mul)
        let aligned = bytes.count & ~7
        var i = 0
        while i < aligned {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
            hash ^= shiftMix(v &* mul) &* mul
            hash = hash &* mul
            i += 8
        }
        if bytes.count & 7 != 0 {
            var v: UInt64 = 0
            for k in stride(from: bytes.count - 1, through: aligned, by: -1) { v = (v << 8) &+ UInt64(bytes[k]) }
            hash ^= v
            hash = hash &* mul
        }
        hash = shiftMix(hash) &* mul
        return shiftMix(hash)
    }
}

extension TorchHash {
    /// torch 2.x names the archive's members in a `std::unordered_set<std::string>` and combines their hashes in
    /// that set's iteration order, so reproducing the id means replaying libstdc++'s hashtable: insertion at the
    /// front of a bucket (or of the list), the prime rehash policy, and rehash reordering.
    static func serializationID(names: [String], combinedCRC: UInt64) -> String {
        var nameHash: UInt64 = 0
        for name in LibstdcxxUnorderedSet.iterationOrder(names) {
            nameHash = combine(nameHash, string(name))
        }
        func padded(_ v: UInt64) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, 20 - s.count)) + s
        }
        return padded(nameHash) + padded(combinedCRC)
    }
}

/// Iteration order of a libstdc++ `unordered_set<string>` filled by inserting `names` in order (max load 1.0).
enum LibstdcxxUnorderedSet {
    /// libstdc++'s `__prime_list` (src/shared/hashtable-aux.cc), as far as checkpoints need.
    static let primes: [Int] = [
        2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 103, 109, 113,
        127, 137, 139, 149, 157, 167, 179, 193, 199, 211, 227, 241, 257, 277, 293, 313, 337, 359, 383, 409, 439, 467,
        503, 541, 577, 619, 661, 709, 761, 823, 887, 953, 1031, 1109, 1193, 1289, 1381, 1493, 1613, 1741, 1879, 2029,
        2179, 2357, 2549, 2753, 2971, 3209, 3469, 3739, 4027, 4349, 4703, 5087, 5503, 5953, 6427, 6949, 7517, 8123,
        8783, 9497, 10273, 11113, 12011, 12983, 14033, 15173, 16411, 17749, 19183, 20753, 22447, 24281, 26267, 28411,
        30727, 33223, 35933, 38873, 42043, 45481, 49201, 53201, 57557, 62233, 67307, 72817, 78779, 85229, 92203,
        99733, 107897, 116731, 126271, 136607, 147793, 159871, 172933, 187091, 202409, 218971,
    ]
    static let fastBuckets = [2, 2, 2, 3, 5, 5, 7, 7, 11, 11, 11, 11, 13, 13]

    static func iterationOrder(_ names: [String]) -> [String] {
        let hashes = names.map { TorchHash.string($0) }
        var next = [Int?](repeating: nil, count: names.count)
        var head: Int? = nil                       // _M_before_begin._M_nxt
        let beforeBegin = -1
        var buckets: [Int?] = [nil]                // node before the bucket's first node; -1 = before_begin
        var bucketCount = 1
        var nextResize = 0

        func nextOf(_ n: Int) -> Int? { n == beforeBegin ? head : next[n] }
        func setNext(_ n: Int, _ v: Int?) { if n == beforeBegin { head = v } else { next[n] = v } }
        func bucket(_ node: Int, _ count: Int) -> Int { Int(hashes[node] % UInt64(count)) }

        func nextBucketCount(_ n: Int) -> Int {
            if n < fastBuckets.count {
                if n == 0 { return 1 }
                nextResize = fastBuckets[n]
                return fastBuckets[n]
            }
            let candidates = primes[6...]
            let found = candidates.first { $0 >= n } ?? primes[primes.count - 1]
            nextResize = found
            return found
        }

        func rehash(_ n: Int) {
            var newBuckets = [Int?](repeating: nil, count: n)
            var p = head
            head = nil
            var beginBucket = 0
            while let cur = p {
                let nx = next[cur]
                let b = bucket(cur, n)
                if let before = newBuckets[b] {
                    next[cur] = nextOf(before)
                    setNext(before, cur)
                } else {
                    next[cur] = head
                    head = cur
                    newBuckets[b] = beforeBegin
                    if next[cur] != nil { newBuckets[beginBucket] = cur }
                    beginBucket = b
                }
                p = nx
            }
            buckets = newBuckets
            bucketCount = n
        }

        for node in 0..<names.count {
            let elements = node
            if elements + 1 > nextResize {
                let minBuckets = max(elements + 1, nextResize == 0 ? 11 : 0)
                if minBuckets >= bucketCount {
                    rehash(nextBucketCount(max(minBuckets + 1, bucketCount * 2)))
                } else {
                    nextResize = bucketCount
                }
            }
            let b = bucket(node, bucketCount)
            if let before = buckets[b] {
                next[node] = nextOf(before)
                setNext(before, node)
            } else {
                next[node] = head
                head = node
                if let nx = next[node] { buckets[bucket(nx, bucketCount)] = node }
                buckets[b] = beforeBegin
            }
        }
        var order = [String]()
        var p = head
        while let cur = p { order.append(names[cur]); p = next[cur] }
        return order
    }
}
