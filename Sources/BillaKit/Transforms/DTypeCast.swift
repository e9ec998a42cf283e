import CKernels
import Foundation

/// Floating-point conversions between f32, f16 and bf16 with round-to-nearest-even, the rounding torch's `.half()`
/// and `.bfloat16()` use, so a cast by billa equals the same cast in torch bit for bit. Every narrowing billa makes
/// (convert --dtype, GGUF export and quantize's f16 fallbacks, recovery's f16 outputs, vocab resize) goes through
/// `convert`, which checks each value in the same pass: a finite value beyond the target's largest finite value
/// would silently become inf, so it is counted (and clamped when the run allows it) and the caller refuses.
public enum DTypeCast {
    static func supports(_ d: DType) -> Bool { d == .f32 || d == .f16 || d == .bf16 }

    /// Largest finite value of a float dtype.
    static func maxFinite(_ d: DType) -> Float {
        switch d {
        case .f16: return 65504
        case .bf16: return Float(bitPattern: 0x7F7F_0000)
        default: return .greatestFiniteMagnitude
        }
    }

    /// Whether a cast loses range or precision (so it must be stated, and checked for overflow).
    public static func isNarrowing(from: DType, to: DType) -> Bool {
        switch (from, to) {
        case (.f32, .f16), (.f32, .bf16), (.bf16, .f16), (.f16, .bf16): return true
        default: return false
        }
    }

    @inline(__always) static func bf16ToF32(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// torch's c10::BFloat16 rounding: NaN becomes the canonical quiet NaN, everything else rounds to nearest even.
    @inline(__always) static func f32ToBF16(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let u = f.bitPattern
        return UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    /// IEEE binary32 -> binary16, round to nearest even, by c10's (and the FP16 library's) branch-free method: the
    /// float unit does the rounding, so the loop vectorizes. torch's `.half()` computes exactly this. NaN becomes
    /// sign | 0x7E00.
    @inline(__always) static func f32ToF16(_ f: Float) -> UInt16 {
        let scaleToInf = Float(bitPattern: 0x7780_0000)    // 0x1.0p+112
        let scaleToZero = Float(bitPattern: 0x0880_0000)   // 0x1.0p-110
        var base = (abs(f) * scaleToInf) * scaleToZero
        let w = f.bitPattern
        let shl1 = w &+ w
        let sign = w & 0x8000_0000
        var bias = shl1 & 0xFF00_0000
        if bias < 0x7100_0000 { bias = 0x7100_0000 }
        base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + base
        let bits = base.bitPattern
        let nonsign = ((bits >> 13) & 0x7C00) &+ (bits & 0x0FFF)
        return UInt16(truncatingIfNeeded: (sign >> 16) | (shl1 > 0xFF00_0000 ? 0x7E00 : nonsign))
    }

    /// How a NaN is written as bf16: torch's canonical 0x7FC0, or ggml's / gguf-py's (the upper half, made quiet),
    /// which GGUF output must use to equal llama.cpp's bytes.
    enum NaNRule { case torch, ggml }

    /// What one checked cast found: finite values beyond the target's range and the largest of their magnitudes.
    public struct Overflow: Sendable, Equatable {
        public var count = 0
        public var maxAbs: Float = 0
        mutating func add(_ o: Overflow) { count += o.count; maxAbs = Swift.max(maxAbs, o.maxAbs) }
    }

    /// Converts `count` elements, checking every value of a narrowing in the same pass. Finite values beyond the
    /// target's largest finite value are counted; with `clamp` they are written as ±max, otherwise as ±inf (the
    /// caller refuses). Same dtype copies; a widening is exact.
    @discardableResult
    static func convert(_ src: UnsafeRawPointer, from: DType, to dst: UnsafeMutableRawPointer, _ target: DType, count: Int,
                        clamp: Bool = false, nan: NaNRule = .torch) -> Overflow {
        guard count > 0 else { return Overflow() }
        if from == target { dst.copyMemory(from: src, byteCount: count * from.size); return Overflow() }
        if target == .f32 { widen(src, from, count: count, into: dst.assumingMemoryBound(to: Float.self)); return Overflow() }
        if from == .f32 { return narrowF32(src.assumingMemoryBound(to: Float.self), count: count, to: dst, target, clamp: clamp, nan: nan) }
        // f16 <-> bf16: widen a block at a time on the stack, then narrow it.
        var o = Overflow()
        let block = 4096
        withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { tmp in
            guard let t = tmp.baseAddress else { return }
            var i = 0
            while i < count {
                let n = Swift.min(block, count - i)
                widen(src + i * from.size, from, count: n, into: t)
                o.add(narrowF32(t, count: n, to: dst + i * target.size, target, clamp: clamp, nan: nan))
                i += n
            }
        }
        return o
    }

    /// f32 -> f16 (the C kernel, which checks in its vector loop) or f32 -> bf16, checked.
    static func narrowF32(_ src: UnsafePointer<Float>, count: Int, to dst: UnsafeMutableRawPointer, _ target: DType,
                          clamp: Bool, nan: NaNRule) -> Overflow {
        var o = Overflow()
        switch target {
        case .f16:
            var m: Float = 0
            o.count = Int(bk_f32_to_f16_checked(src, dst.assumingMemoryBound(to: UInt16.self), Int64(count), clamp ? 1 : 0, &m))
            o.maxAbs = m
        case .bf16:
            let out = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count {
                let f = src[i]
                var b: UInt16
                if f.isNaN {
                    b = nan == .torch ? 0x7FC0 : UInt16(truncatingIfNeeded: ((f.bitPattern & 0xFFFF_0000) | (64 << 16)) >> 16)
                } else {
                    b = f32ToBF16(f)
                    if b & 0x7FFF == 0x7F80, f.isFinite {
                        o.count += 1
                        o.maxAbs = Swift.max(o.maxAbs, abs(f))
                        if clamp { b = (b & 0x8000) | 0x7F7F }
                    }
                }
                out[i] = b.littleEndian
            }
        default:
            dst.copyMemory(from: src, byteCount: count * 4)
        }
        return o
    }

    /// Widens `count` elements to f32, with the dtype switch outside the loop.
    static func widen(_ src: UnsafeRawPointer, _ dtype: DType, count: Int, into dst: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16, .bf16:
            bk_to_f32(KernelType.of(dtype) ?? Int32(BK_F32), src, dst, Int64(count))   // exact; F16C when the CPU has it
        default:
            for i in 0..<count { dst[i] = bf16ToF32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        }
    }

    /// Reads element i of a float tensor's bytes as f32.
    @inline(__always) static func load(_ p: UnsafeRawPointer, _ dtype: DType, _ i: Int) -> Float {
        switch dtype {
        case .f32: return p.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
        case .f16: return Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
        case .bf16: return bf16ToF32(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        default: return .nan
        }
    }
}

/// One run's explicit narrowings: whether a value beyond the target's range refuses the run (the default) or is
/// clamped to ±max (`--clamp-overflow`), and what was clamped, for the report on stderr. Shared by the threads that
/// write tensors, hence the lock.
public final class Narrowing: @unchecked Sendable {
    public let clamp: Bool
    private let lock = NSLock()
    private var clamped: [String: DTypeCast.Overflow] = [:]
    private var order: [String] = []

    public init(clamp: Bool = false) { self.clamp = clamp }

    /// The statement of precision loss a plan makes once: "narrowing 3 tensors (12.0 MiB) bf16 -> f16", one line per
    /// pair of types.
    public static func statement(_ casts: [(from: DType, to: DType, bytes: Int)]) -> [String] {
        var groups = [String: (n: Int, bytes: Int)]()
        var keys = [String]()
        for c in casts where DTypeCast.isNarrowing(from: c.from, to: c.to) {
            let k = "\(c.from.rawValue.lowercased()) -> \(c.to.rawValue.lowercased())"
            if groups[k] == nil { keys.append(k) }
            groups[k, default: (0, 0)].n += 1
            groups[k, default: (0, 0)].bytes += c.bytes
        }
        return keys.map { k in
            let g = groups[k] ?? (0, 0)
            return "narrowing \(g.n) tensor\(g.n == 1 ? "" : "s") (\(ByteFormat.human(g.bytes))) \(k): values are rounded to nearest even"
                + (k.hasSuffix("f16") && !k.hasSuffix("bf16") ? "; any beyond ±65504 is refused (--clamp-overflow clamps it)" : "")
        }
    }

    /// Lines for stderr after a run that clamped: how many values in which tensors.
    public var clampedReport: [String] {
        lock.lock(); defer { lock.unlock() }
        return order.compactMap { name in
            clamped[name].map { "clamped \($0.count) value\($0.count == 1 ? "" : "s") of \(name) to the target's largest finite value (the largest |value| was \($0.maxAbs))" }
        }
    }

    /// Deals with what a chunk's cast found: nothing, a clamp to record, or the refusal. On refusal `rest` scans
    /// the tensor's remaining values, so the error gives the tensor's count and largest |value|, not the chunk's.
    func check(_ o: DTypeCast.Overflow, tensor: String, file: String?, from: DType, to: DType,
               rest: () throws -> DTypeCast.Overflow) throws {
        guard o.count > 0 else { return }
        if clamp {
            lock.lock(); defer { lock.unlock() }
            if clamped[tensor] == nil { order.append(tensor) }
            clamped[tensor, default: DTypeCast.Overflow()].add(o)
            return
        }
        var all = o
        all.add(try rest())
        throw Narrowing.overflowError(all, tensor: tensor, file: file, from: from, to: to)
    }

    static func overflowError(_ o: DTypeCast.Overflow, tensor: String, file: String?, from: DType, to: DType) -> BillaError {
        let t = to.rawValue.lowercased()
        let max = to == .f16 ? "65504" : "\(DTypeCast.maxFinite(to))"
        return BillaError(.invalidArgument, file: file, tensor: tensor,
                          "\(o.count) value\(o.count == 1 ? "" : "s") beyond \(t)'s largest finite value \(max) (the largest |value| is \(o.maxAbs)); narrowing \(from.rawValue.lowercased()) -> \(t) would turn \(o.count == 1 ? "it" : "them") into inf",
                          remedy: "keep the source's dtype (\(from.rawValue.lowercased()): omit --dtype or pass --dtype \(from.rawValue.lowercased())), or pass --clamp-overflow to write them as ±\(max)")
    }
}

extension RowSource {
    /// The same values in another floating-point dtype, rounded to nearest even and checked by `narrowing`.
    /// Integer tensors are returned as is.
    func casting(to target: DType, named tensor: String, file: String?, narrowing: Narrowing) -> RowSource {
        guard target != dtype, dtype.isFloatingPoint, DTypeCast.supports(dtype), DTypeCast.supports(target) else { return self }
        let src = self
        let from = dtype
        let srcRow = rowBytes
        let n = rowElements
        let total = rows
        let clamp = narrowing.clamp
        return RowSource(dtype: target, shape: shape, provenance: "\(target.rawValue.lowercased())(\(provenance))",
                         fill: { r, dst in
                             let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(r.count * srcRow, 1), alignment: 64)
                             defer { scratch.deallocate() }
                             try src.fill(r, scratch)
                             let o = DTypeCast.convert(scratch, from: from, to: dst, target, count: r.count * n, clamp: clamp)
                             try narrowing.check(o, tensor: tensor, file: file, from: from, to: target) {
                                 try src.overflow(rows: r.upperBound..<total, to: target)
                             }
                         },
                         release: { r in src.release(r) })
    }

    /// What casting rows `range` to `target` would find, read a chunk at a time (for the refusal's message).
    func overflow(rows range: Range<Int>, to target: DType) throws -> DTypeCast.Overflow {
        var o = DTypeCast.Overflow()
        guard !range.isEmpty, rowBytes > 0 else { return o }
        let step = Swift.max(1, (4 << 20) / rowBytes)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: Swift.min(step, range.count) * rowBytes, alignment: 64)
        defer { raw.deallocate() }
        let out = UnsafeMutableRawPointer.allocate(byteCount: Swift.min(step, range.count) * rowElements * target.size, alignment: 64)
        defer { out.deallocate() }
        var lo = range.lowerBound
        while lo < range.upperBound {
            let r = lo..<Swift.min(range.upperBound, lo + step)
            try fill(r, raw)
            o.add(DTypeCast.convert(raw, from: dtype, to: out, target, count: r.count * rowElements))
            lo = r.upperBound
        }
        return o
    }
}
