/// The byte-plane splits of formats/pack.md 5.2 and their inverses, over raw memory. Plane `p` of a chunk of `n`
/// elements is `planes + p * n` (one byte per element) except for `.none`, whose single plane is the chunk.
enum PlaneCodec {
    static func split(_ t: PlaneTransform, _ src: UnsafeRawBufferPointer, into planes: UnsafeMutableRawPointer) {
        guard let s = src.baseAddress else { return }
        switch t {
        case .none:
            planes.copyMemory(from: s, byteCount: src.count)
        case .bytes16:
            let n = src.count / 2
            let v = s.assumingMemoryBound(to: UInt8.self)
            let hi = planes.assumingMemoryBound(to: UInt8.self), lo = hi + n
            for k in 0..<n { lo[k] = v[2 * k]; hi[k] = v[2 * k + 1] }
        case .bf16Exponent:
            let n = src.count / 2
            let hi = planes.assumingMemoryBound(to: UInt8.self), lo = hi + n
            for k in 0..<n {
                let v = UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self))
                hi[k] = UInt8(truncatingIfNeeded: v >> 7)
                lo[k] = UInt8(truncatingIfNeeded: ((v >> 8) & 0x80) | (v & 0x7F))
            }
        case .f32Exponent:
            let n = src.count / 4
            let p0 = planes.assumingMemoryBound(to: UInt8.self), p1 = p0 + n, p2 = p1 + n, p3 = p2 + n
            for k in 0..<n {
                let v = UInt32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))
                p0[k] = UInt8(truncatingIfNeeded: v >> 23)
                p1[k] = UInt8(truncatingIfNeeded: ((v >> 24) & 0x80) | ((v >> 16) & 0x7F))
                p2[k] = UInt8(truncatingIfNeeded: v >> 8)
                p3[k] = UInt8(truncatingIfNeeded: v)
            }
        }
    }

    /// Re-assembles `count` bytes of elements into `dst` from the planes (each `count / elementSize` bytes, or
    /// `count` for `.none`). Planes are separate pointers so raw planes are read straight from the mapped file.
    static func merge(_ t: PlaneTransform, planes: [UnsafeRawPointer], into dst: UnsafeMutableRawPointer, count: Int) {
        switch t {
        case .none:
            dst.copyMemory(from: planes[0], byteCount: count)
        case .bytes16:
            let n = count / 2
            let hi = planes[0].assumingMemoryBound(to: UInt8.self), lo = planes[1].assumingMemoryBound(to: UInt8.self)
            let d = dst.assumingMemoryBound(to: UInt8.self)
            for k in 0..<n { d[2 * k] = lo[k]; d[2 * k + 1] = hi[k] }
        case .bf16Exponent:
            let n = count / 2
            let hi = planes[0].assumingMemoryBound(to: UInt8.self), lo = planes[1].assumingMemoryBound(to: UInt8.self)
            let d = dst.assumingMemoryBound(to: UInt16.self)
            for k in 0..<n {
                let e = UInt16(hi[k]), m = UInt16(lo[k])
                d[k] = (((m & 0x80) << 8) | (e << 7) | (m & 0x7F)).littleEndian
            }
        case .f32Exponent:
            let n = count / 4
            let p0 = planes[0].assumingMemoryBound(to: UInt8.self), p1 = planes[1].assumingMemoryBound(to: UInt8.self)
            let p2 = planes[2].assumingMemoryBound(to: UInt8.self), p3 = planes[3].assumingMemoryBound(to: UInt8.self)
            let d = dst.assumingMemoryBound(to: UInt32.self)
            for k in 0..<n {
                let a = UInt32(p1[k])
                d[k] = (((a & 0x80) << 24) | (UInt32(p0[k]) << 23) | ((a & 0x7F) << 16) | (UInt32(p2[k]) << 8) | UInt32(p3[k])).littleEndian
            }
        }
    }

    /// Order-0 entropy in bits per byte: planes above ~7.9 are noise that zstd cannot shrink, so the writer stores
    /// them raw without spending time on a match search.
    static func entropy(_ p: UnsafeRawBufferPointer) -> Double {
        guard let base = p.baseAddress, p.count > 0 else { return 0 }
        // Four interleaved histograms so consecutive equal bytes do not serialise on one counter.
        var h = [UInt32](repeating: 0, count: 1024)
        h.withUnsafeMutableBufferPointer { c in
            let b = base.assumingMemoryBound(to: UInt8.self)
            let n = p.count
            var i = 0
            while i + 4 <= n {
                c[Int(b[i])] &+= 1; c[256 + Int(b[i + 1])] &+= 1; c[512 + Int(b[i + 2])] &+= 1; c[768 + Int(b[i + 3])] &+= 1
                i += 4
            }
            while i < n { c[Int(b[i])] &+= 1; i += 1 }
        }
        let n = Double(p.count)
        var e = 0.0
        for k in 0..<256 {
            let c = h[k] + h[256 + k] + h[512 + k] + h[768 + k]
            if c > 0 { let q = Double(c) / n; e -= q * log2(q) }
        }
        return e
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
