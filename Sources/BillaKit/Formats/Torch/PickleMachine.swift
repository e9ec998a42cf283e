/// A pickle interpreter for the subset `torch.save` writes. It executes nothing: GLOBAL resolves only names on the
/// allowlist in `PickleGlobals.swift`, REDUCE/NEWOBJ apply only the torch rebuild functions it knows, and every other
/// opcode or global is refused with its name. Limits on stack depth, memo size and nesting keep hostile input from
/// exhausting memory.
struct PickleMachine {
    let file: String
    /// Resolves a BINPERSID tuple to a storage; the torch reader checks the key exists in the archive.
    let persistentLoad: ([PickleValue]) throws -> PickleValue

    static let maxStack = 1 << 20
    static let maxMemo = 1 << 22

    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    init(file: String, persistentLoad: @escaping ([PickleValue]) throws -> PickleValue) {
        self.file = file
        self.persistentLoad = persistentLoad
    }

    mutating func run(_ bytes: UnsafeRawBufferPointer) throws -> PickleValue {
        var r = ByteReader(bytes, file: file)
        while true {
            let op = try r.readU8("a pickle opcode")
            switch op {
            case 0x80: _ = try r.readU8("PROTO")                           // PROTO
            case 0x95: _ = try r.readLE(UInt64.self, "FRAME")              // FRAME
            case 0x2E:                                                     // STOP
                guard let top = stack.popLast() else { throw bad("STOP with an empty stack") }
                return top
            case 0x7D: push(.dict(PickleDict()))                           // EMPTY_DICT }
            case 0x5D: push(.list(PickleList()))                           // EMPTY_LIST ]
            case 0x29: push(.tuple([]))                                    // EMPTY_TUPLE )
            case 0x28:                                                     // MARK (
                guard marks.count < PickleMachine.maxStack else { throw bad("too many marks") }
                marks.append(stack.count)
            case 0x71: try memoize(Int(try r.readU8("BINPUT")))            // BINPUT q
            case 0x72: try memoize(Int(try r.readLE(UInt32.self, "LONG_BINPUT")))  // LONG_BINPUT r
            case 0x94: try memoize(memo.count)                             // MEMOIZE
            case 0x68: try push(recall(Int(try r.readU8("BINGET"))))       // BINGET h
            case 0x6A: try push(recall(Int(try r.readLE(UInt32.self, "LONG_BINGET"))))  // LONG_BINGET j
            case 0x58: try push(.string(text(&r, Int(try r.readLE(UInt32.self, "BINUNICODE")))))  // X
            case 0x8C: try push(.string(text(&r, Int(try r.readU8("SHORT_BINUNICODE")))))
            case 0x8D: try push(.string(text(&r, try length64(&r))))       // BINUNICODE8
            case 0x55: try push(.string(text(&r, Int(try r.readU8("SHORT_BINSTRING")))))  // U
            case 0x54: try push(.string(text(&r, Int(try r.readLE(UInt32.self, "BINSTRING")))))  // T
            case 0x43: try push(.bytes(Array(r.readBytes(Int(try r.readU8("SHORT_BINBYTES")), "SHORT_BINBYTES"))))  // C
            case 0x42: try push(.bytes(Array(r.readBytes(Int(try r.readLE(UInt32.self, "BINBYTES")), "BINBYTES"))))  // B
            case 0x8E: try push(.bytes(Array(r.readBytes(try length64(&r), "BINBYTES8"))))
            case 0x4B: push(.int(Int(try r.readU8("BININT1"))))            // K
            case 0x4D: push(.int(Int(try r.readLE(UInt16.self, "BININT2"))))  // M
            case 0x4A: push(.int(Int(try r.readLE(Int32.self, "BININT"))))    // J
            case 0x8A: try push(.int(long(&r, Int(try r.readU8("LONG1")))))   // LONG1
            case 0x8B:                                                     // LONG4
                let n = try r.readLE(Int32.self, "LONG4")
                guard n >= 0, n <= 8 else { throw bad("LONG4 integer of \(n) bytes is too large") }
                try push(.int(long(&r, Int(n))))
            case 0x47: push(.float(Double(bitPattern: try r.readBE(UInt64.self, "BINFLOAT"))))  // G
            case 0x4E: push(.none)                                         // N
            case 0x88: push(.bool(true))                                   // NEWTRUE
            case 0x89: push(.bool(false))                                  // NEWFALSE
            case 0x74: push(.tuple(try popMark()))                         // TUPLE t
            case 0x85: push(.tuple(try pop(1)))                            // TUPLE1
            case 0x86: push(.tuple(try pop(2)))                            // TUPLE2
            case 0x87: push(.tuple(try pop(3)))                            // TUPLE3
            case 0x6C:                                                     // LIST l
                let l = PickleList(); l.items = try popMark(); push(.list(l))
            case 0x64:                                                     // DICT d
                let d = PickleDict()
                try setItems(d, try popMark())
                push(.dict(d))
            case 0x61:                                                     // APPEND a
                let v = try pop(1)[0]
                guard case .list(let l) = try top() else { throw bad("APPEND to a \(try top().typeName)") }
                l.items.append(v)
            case 0x65:                                                     // APPENDS e
                let items = try popMark()
                guard case .list(let l) = try top() else { throw bad("APPENDS to a \(try top().typeName)") }
                l.items.append(contentsOf: items)
            case 0x73:                                                     // SETITEM s
                let kv = try pop(2)
                guard case .dict(let d) = try top() else { throw bad("SETITEM on a \(try top().typeName)") }
                d.set(kv[0], kv[1])
            case 0x75:                                                     // SETITEMS u
                let items = try popMark()
                guard case .dict(let d) = try top() else { throw bad("SETITEMS on a \(try top().typeName)") }
                try setItems(d, items)
            case 0x63:                                                     // GLOBAL c
                let module = try line(&r)
                let name = try line(&r)
                try push(.global(resolve(module, name)))
            case 0x93:                                                     // STACK_GLOBAL
                let mn = try pop(2)
                guard case .string(let module) = mn[0], case .string(let name) = mn[1] else {
                    throw bad("STACK_GLOBAL without two strings")
                }
                try push(.global(resolve(module, name)))
            case 0x52:                                                     // REDUCE R
                let args = try pop(1)[0]
                let callable = try pop(1)[0]
                try push(apply(callable, args))
            case 0x81:                                                     // NEWOBJ
                let args = try pop(1)[0]
                let cls = try pop(1)[0]
                try push(apply(cls, args))
            case 0x62:                                                     // BUILD b
                // torch's state dicts BUILD an OrderedDict with its `_metadata`; the state carries no tensors.
                let state = try pop(1)[0]
                switch try top() {
                case .dict, .tensor: break
                default: throw bad("BUILD on a \(try top().typeName) with \(state.typeName) state")
                }
            case 0x51:                                                     // BINPERSID Q
                let pid = try pop(1)[0]
                guard case .tuple(let items) = pid else { throw bad("persistent id is a \(pid.typeName), not a tuple") }
                push(try persistentLoad(items))
            case 0x30: _ = try pop(1)                                      // POP 0
            case 0x31: _ = try popMark()                                   // POP_MARK 1
            case 0x32: push(try top())                                     // DUP 2
            default:
                throw BillaError(.hostilePickle, file: file,
                                 "data.pkl uses pickle opcode 0x\(String(op, radix: 16)) at byte \(r.position - 1), which torch.save never writes",
                                 remedy: "billa reads only tensor state dicts; load it in a sandbox and re-save the state dict with torch.save")
            }
        }
    }

    // MARK: - stack

    private mutating func push(_ v: PickleValue) {
        stack.append(v)
    }

    private func top() throws -> PickleValue {
        guard let v = stack.last else { throw bad("stack underflow") }
        return v
    }

    private mutating func pop(_ n: Int) throws -> [PickleValue] {
        let floor = marks.last ?? 0
        guard stack.count - n >= floor else { throw bad("stack underflow") }
        let items = Array(stack.suffix(n))
        stack.removeLast(n)
        return items
    }

    private mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw bad("no MARK to pop to") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private mutating func memoize(_ index: Int) throws {
        guard memo.count < PickleMachine.maxMemo else { throw bad("memo too large") }
        memo[index] = try top()
    }

    private func recall(_ index: Int) throws -> PickleValue {
        guard let v = memo[index] else { throw bad("memo entry \(index) read before it was written") }
        return v
    }

    private func setItems(_ d: PickleDict, _ items: [PickleValue]) throws {
        guard items.count % 2 == 0 else { throw bad("odd number of items for a dict") }
        var i = 0
        while i < items.count { d.set(items[i], items[i + 1]); i += 2 }
    }

    // MARK: - operands

    private func text(_ r: inout ByteReader, _ n: Int) throws -> String {
        let b = try r.readBytes(n, "a pickled string")
        guard let s = String(validating: b, as: UTF8.self) else { throw bad("a pickled string is not UTF-8") }
        return s
    }

    private func length64(_ r: inout ByteReader) throws -> Int {
        let n = try r.readLE(UInt64.self, "a length")
        guard n <= UInt64(r.remaining) else { throw BillaError.truncated("a pickled value", file: file) }
        return Int(n)
    }

    private func long(_ r: inout ByteReader, _ n: Int) throws -> Int {
        guard n <= 8 else { throw bad("integer of \(n) bytes is too large") }
        if n == 0 { return 0 }
        let b = try r.readBytes(n, "a pickled integer")
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(b[i]) << (8 * UInt64(i)) }
        if n < 8, b[n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }   // sign-extend
        return Int(Int64(bitPattern: v))
    }

    private func line(_ r: inout ByteReader) throws -> String {
        var out = [UInt8]()
        while true {
            let c = try r.readU8("a GLOBAL name")
            if c == 0x0A { break }
            out.append(c)
            guard out.count < 256 else { throw bad("GLOBAL name too long") }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func resolve(_ module: String, _ name: String) throws -> PickleGlobal {
        guard let g = PickleGlobal.resolve(module: module, name: name) else {
            throw BillaError(.hostilePickle, file: file,
                             "data.pkl asks for the global '\(module).\(name)', which is not a tensor rebuild function; billa executes nothing from a pickle",
                             remedy: "if you trust the file, load it in a sandbox with torch.load and re-save only the state dict (torch.save(model.state_dict(), path))")
        }
        return g
    }

    private func bad(_ what: String) -> BillaError {
        BillaError(.hostilePickle, file: file, "data.pkl is malformed: \(what)",
                   remedy: "the checkpoint is corrupt or was not written by torch.save; download it again")
    }

    // MARK: - the rebuild functions

    private func apply(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let g) = callable else { throw bad("REDUCE on a \(callable.typeName)") }
        guard case .tuple(let a) = args else { throw bad("REDUCE arguments are a \(args.typeName)") }
        switch g {
        case .orderedDict:
            guard a.isEmpty else { throw bad("OrderedDict called with arguments") }
            return .dict(PickleDict())
        case .rebuildTensorV2:
            return .tensor(try rebuildTensor(a))
        case .rebuildParameter:
            guard let first = a.first, case .tensor = first else { throw bad("_rebuild_parameter without a tensor") }
            return first
        case .rebuildFromTypeV2:
            // (func, type, args, state): allowed only for plain tensors and parameters rebuilt by a known function.
            guard a.count >= 3, case .global(let cls) = a[1], cls == .tensorClass || cls == .parameterClass else {
                throw bad("_rebuild_from_type_v2 with an unexpected type")
            }
            return try apply(a[0], a[2])
        case .parameterClass:
            guard let first = a.first, case .tensor = first else { throw bad("Parameter without a tensor") }
            return first
        case .tensorClass, .storageType:
            throw bad("\(g.qualifiedName) called directly")
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private func rebuildTensor(_ a: [PickleValue]) throws -> TorchTensorRef {
        guard a.count >= 4, case .storage(let storage) = a[0], case .int(let offset) = a[1],
              case .tuple(let sizeValues) = a[2], case .tuple(let strideValues) = a[3] else {
            throw bad("_rebuild_tensor_v2 with unexpected arguments")
        }
        let shape = try sizeValues.map { v -> Int in
            guard case .int(let i) = v, i >= 0 else { throw bad("tensor size is not a non-negative int") }
            return i
        }
        let strides = try strideValues.map { v -> Int in
            guard case .int(let i) = v, i >= 0 else { throw bad("tensor stride is not a non-negative int") }
            return i
        }
        guard shape.count == strides.count, offset >= 0 else { throw bad("tensor size and stride disagree") }
        return TorchTensorRef(storage: storage, elementOffset: offset, shape: shape, strides: strides)
    }
}
