import Foundation

/// Eight Float lanes: the unit of AlignerKit's hand-vectorised kernels (one AVX2 register).
typealias Vec8 = SIMD8<Float>

extension UnsafePointer where Pointee == Float {
    @inline(__always) func vec8(_ i: Int) -> Vec8 { UnsafeRawPointer(self + i).loadUnaligned(as: Vec8.self) }
}

extension UnsafeMutablePointer where Pointee == Float {
    @inline(__always) func vec8(_ i: Int) -> Vec8 { UnsafeRawPointer(self + i).loadUnaligned(as: Vec8.self) }
    @inline(__always) func store(_ v: Vec8, at i: Int) { UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: Vec8.self) }
}

/// Lane-wise maximum (written with a mask: the generic `pointwiseMax` is not inlined and runs lane by lane).
@inline(__always) func vmax(_ a: Vec8, _ b: Vec8) -> Vec8 { a.replacing(with: b, where: b .> a) }

/// Vectorised e^x (Cephes' expf: range reduction by ln 2, degree-5 polynomial with fused multiply-adds, exponent
/// bits from the rounding constant 1.5·2²³). Relative error below 1e-7 over the float range; 0 below −87.3 (so −∞
/// gives 0), +∞ above 88.4.
@inline(__always)
func vexp(_ x: Vec8) -> Vec8 {
    let hi = Vec8(repeating: 88.376_26), lo = Vec8(repeating: -87.336_54)
    var xc = x
    xc.replace(with: lo, where: x .< lo)
    xc.replace(with: hi, where: x .> hi)
    let magic = Vec8(repeating: 12_582_912)  // adding it rounds to an integer held in the low mantissa bits
    let t = magic.addingProduct(xc, Vec8(repeating: 1.442_695_040_888_963_4))
    let n = t - magic
    let r = xc.addingProduct(n, Vec8(repeating: -0.693_359_375)).addingProduct(n, Vec8(repeating: 2.121_944_400_546_905_8e-4))
    var p = Vec8(repeating: 1.987_569_150_0e-4)
    p = Vec8(repeating: 1.398_199_950_7e-3).addingProduct(p, r)
    p = Vec8(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
    p = Vec8(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
    p = Vec8(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
    p = Vec8(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
    p = (r + 1).addingProduct(p, r * r)
    let k = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    var y = p * unsafeBitCast((k &+ 127) &<< 23, to: Vec8.self)
    y.replace(with: 0, where: x .< lo)
    y.replace(with: .infinity, where: x .> hi)
    return y
}

/// 1 / (1 + e^−x).
@inline(__always)
func vsigmoid(_ x: Vec8) -> Vec8 { 1 / (1 + vexp(-x)) }

/// tanh x = 1 − 2 / (e^{2x} + 1); absolute error about 1e-7.
@inline(__always)
func vtanh(_ x: Vec8) -> Vec8 { 1 - 2 / (vexp(2 * x) + 1) }

/// Row helpers shared by softmax, log-softmax, cross-entropy and attention.
enum RowMath {
    /// max of `n` floats.
    @inline(__always)
    static func max(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = Vec8(repeating: -.infinity)
        var j = 0
        while j + 8 <= n { m = vmax(m, x.vec8(j)); j += 8 }
        var s = m.max()
        while j < n { s = Swift.max(s, x[j]); j += 1 }
        return s
    }

    /// Σ e^(x − shift); when `dst` is given, also writes each e^(x − shift) there (it may alias x).
    @inline(__always)
    static func expSum(_ x: UnsafePointer<Float>, _ n: Int, shift: Float, into dst: UnsafeMutablePointer<Float>?) -> Float {
        let sv = Vec8(repeating: shift)
        var acc = Vec8()
        var j = 0
        while j + 8 <= n {
            let e = vexp(x.vec8(j) - sv)
            dst?.store(e, at: j)
            acc += e
            j += 8
        }
        var s = acc.sum()
        if j < n {
            var tail = Vec8(repeating: -.infinity)
            for k in 0..<(n - j) { tail[k] = x[j + k] - shift }
            let e = vexp(tail)
            for k in 0..<(n - j) { dst?[j + k] = e[k]; s += e[k] }
        }
        return s
    }

    /// Multiplies `n` floats by `s` in place.
    @inline(__always)
    static func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, by s: Float) {
        let sv = Vec8(repeating: s)
        var j = 0
        while j + 8 <= n { x.store(x.vec8(j) * sv, at: j); j += 8 }
        while j < n { x[j] *= s; j += 1 }
    }

    /// Σ a·b over `n` floats.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = Vec8()
        var j = 0
        while j + 8 <= n { acc = acc.addingProduct(a.vec8(j), b.vec8(j)); j += 8 }
        var s = acc.sum()
        while j < n { s += a[j] * b[j]; j += 1 }
        return s
    }
}
