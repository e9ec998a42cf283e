/// The f16 conversions the quantizers use, exactly as ggml does them: round to nearest even, overflow to infinity,
/// and every NaN to the canonical quiet NaN 0x7E00 (ggml's bit-trick converter), so block scales match byte for byte.
public enum HalfFloat {
    @inline(__always) public static func fromFloat(_ f: Float) -> UInt16 {
        if f.isNaN { return UInt16(truncatingIfNeeded: f.bitPattern >> 16) & 0x8000 | 0x7E00 }
        return Float16(f).bitPattern
    }

    @inline(__always) public static func toFloat(_ h: UInt16) -> Float {
        Float(Float16(bitPattern: h))
    }

    /// Rounds through f16 and back: the value a block scale has once stored.
    @inline(__always) public static func roundTrip(_ f: Float) -> Float { toFloat(fromFloat(f)) }
}

/// C conversions with x86-64 semantics, for the places where ggml's reference relies on them.
enum CRound {
    /// `(int)f` as cvttss2si does it: truncation toward zero, and the "integer indefinite" value Int32.min for NaN
    /// and out-of-range inputs (C leaves those undefined; gcc on x86-64 produces this).
    @inline(__always) static func truncToInt32(_ f: Float) -> Int32 {
        guard f.isFinite, f > -2147483904.0, f < 2147483648.0 else { return Int32.min }
        return Int32(f)
    }

    /// ggml's nearest_int: adds 1.5 × 2^23 so the FPU's round-to-nearest-even does the rounding, then reads the
    /// low mantissa bits. Exact for |f| ≤ 2^22; outside that it returns what the C code returns.
    @inline(__always) static func nearestInt(_ f: Float) -> Int32 {
        let v = f + 12582912.0
        return Int32(bitPattern: v.bitPattern & 0x007F_FFFF) &- 0x0040_0000
    }
}
