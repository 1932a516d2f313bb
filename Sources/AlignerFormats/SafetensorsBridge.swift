import AlignerSafetensors
import AlignerTensor
import Foundation

/// Safetensors writing for the executable (which only wires modules together).
public enum AlignerSafetensorsBridge {
    public static func write(_ tensors: [String: Tensor], to path: String) throws {
        try SafetensorsWriter.write(tensors, to: URL(fileURLWithPath: path))
    }
}
