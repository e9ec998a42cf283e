/// A window into a running forward pass, so that `billa imatrix` (the inputs of every matrix product) and
/// `verify --trace` (the residual stream block by block) watch the one pass that verify and generate run instead
/// of keeping copies of it. Every method has a default that does nothing: an observer implements what it needs.
/// Pointers are valid only during the call.
public protocol ForwardObserver: AnyObject {
    /// The f32 input of a product with the matrix `name` (its name in the file's own layout, e.g.
    /// `blk.0.attn_q.weight` or `model.layers.0.self_attn.q_proj.weight`): `tokens` rows of `cols` values, just
    /// before it is multiplied. `layer` is nil for the output head. q, k and v share one input and are reported
    /// once each, as llama-imatrix records them.
    func matmulInput(name: String, layer: Int?, _ x: UnsafePointer<Float>, tokens: Int, cols: Int)

    /// The residual stream, `tokens` rows of `dim` values, after block `layer`'s attention or MLP was added.
    func residual(layer: Int, after stage: BlockStage, _ x: UnsafePointer<Float>, tokens: Int, dim: Int)
}

/// The two additions to the residual stream in every block.
public enum BlockStage: String, Sendable, Codable {
    case attention, mlp
}

extension ForwardObserver {
    public func matmulInput(name: String, layer: Int?, _ x: UnsafePointer<Float>, tokens: Int, cols: Int) {}
    public func residual(layer: Int, after stage: BlockStage, _ x: UnsafePointer<Float>, tokens: Int, dim: Int) {}
}
