@testable import AlignerRecipes
import AlignerTensor
import Foundation
import TrainingTestSupport
import XCTest


/// `train.precision = "bf16"`: bf16 matrix products (native through oneDNN, or emulated) keep the loss curve within
/// a stated tolerance of float32's, and are really in use (the curves are not identical).
final class PrecisionTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testBF16LossCurveStaysWithinOnePercentOfFP32() throws {
        let fp32 = try quietTrainer(tinyRecipe("fp32", in: dir, ["stage1.epochs=1", "stage2.epochs=2"])).run()
        let bf16 = try quietTrainer(tinyRecipe("bf16", in: dir, ["stage1.epochs=1", "stage2.epochs=2", "train.precision=bf16"])).run()
        XCTAssertEqual(fp32.evalCurve.count, bf16.evalCurve.count)
        XCTAssertNotEqual(fp32.trainLosses, bf16.trainLosses, "bf16 products change the arithmetic")
        for (a, b) in zip(fp32.evalCurve, bf16.evalCurve) {
            XCTAssertEqual(b.evalLoss, a.evalLoss, accuracy: 0.01 * a.evalLoss, "stage \(a.stage) step \(a.step)")
        }
        for (a, b) in zip(fp32.trainLosses, bf16.trainLosses) { XCTAssertEqual(b, a, accuracy: 0.02 * a) }
        XCTAssertThrowsError(try tinyRecipe("bad", in: dir, ["train.precision=fp16"])) { XCTAssertEqual(($0 as? RecipeError)?.key, "train.precision") }
    }
}
