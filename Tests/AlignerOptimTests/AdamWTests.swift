import AlignerTensor
import XCTest

@testable import AlignerOptim

final class AdamWTests: XCTestCase {
    /// Values printed by torch.optim.AdamW(foreach=False), lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.1 on
    /// p and 0 on q, for three steps with the gradients below.
    func testMatchesPyTorchForThreeSteps() {
        let p = Tensor([1, -2, 0], shape: [3], requiresGrad: true), q = Tensor([0.5, 0.25], shape: [2], requiresGrad: true)
        let opt = AdamW(groups: [ParameterGroup(names: ["p"], weightDecay: 0.1), ParameterGroup(names: ["q"], weightDecay: 0)],
                        beta1: 0.9, beta2: 0.999, eps: 1e-8)
        let grads: [([Float], [Float])] = [([0.5, -1, 0], [1, -3]), ([0.1, 0.2, -0.3], [0, 2]), ([-1, 0, 0.4], [0.5, 0.5])]
        let expected: [([Float], [Float])] = [
            ([0.890000045, -1.879999995, 0.0], [0.400000006, 0.349999994]),
            ([0.800795972, -1.810097337, 0.07441368], [0.332994163, 0.364452064]),
            ([0.821533382, -1.752493858, 0.057057403], [0.258084476, 0.366735399]),
        ]
        for (step, ((gp, gq), (ep, eq))) in zip(grads, expected).enumerated() {
            p.releaseGrad(); q.releaseGrad()
            (p * Tensor(gp, shape: [3])).sum().backward()
            (q * Tensor(gq, shape: [2])).sum().backward()
            opt.update(["p": p, "q": q], lr: 0.1)
            for (a, b) in zip(p.scalars, ep) { XCTAssertEqual(a, b, accuracy: 2e-7, "p step \(step)") }
            for (a, b) in zip(q.scalars, eq) { XCTAssertEqual(a, b, accuracy: 2e-7, "q step \(step)") }
        }
        XCTAssertEqual(opt.step, 3)
    }

    func testParametersWithoutGradientsAreLeftAlone() {
        let p = Tensor([1, 2], shape: [2], requiresGrad: true)
        let opt = AdamW(groups: [ParameterGroup(names: ["p"], weightDecay: 0.5)])
        opt.update(["p": p], lr: 0.1)
        XCTAssertEqual(p.scalars, [1, 2])
        XCTAssertNil(opt.moments["p"])
    }

    func testStateRoundTripContinuesIdentically() throws {
        func run(split: Bool) throws -> [Float] {
            let p = Tensor((0..<37).map { Float($0) * 0.1 - 1 }, shape: [37], requiresGrad: true)
            var opt = AdamW(groups: [ParameterGroup(names: ["w"], weightDecay: 0.01)], beta1: 0.9, beta2: 0.95)
            for step in 0..<6 {
                if split && step == 3 {
                    let (tensors, n) = opt.stateDict()
                    XCTAssertEqual(Set(tensors.keys), ["w.exp_avg", "w.exp_avg_sq"])
                    opt = AdamW(groups: [ParameterGroup(names: ["w"], weightDecay: 0.01)], beta1: 0.9, beta2: 0.95)
                    try opt.load(tensors: tensors, step: n, parameters: ["w": p])
                }
                p.releaseGrad()
                (p * p * Float(step + 1)).sum().backward()
                opt.update(["w": p], lr: 0.05)
            }
            return p.scalars
        }
        XCTAssertEqual(try run(split: false), try run(split: true))
    }

    func testStandardGroupsSkipDecayOnNormsAndEmbeddings() {
        let params: [String: Tensor] = [
            "model.embed_tokens.weight": Tensor.zeros([4, 2]), "model.norm.weight": Tensor.zeros([2]),
            "model.layers.0.mlp.up_proj.weight": Tensor.zeros([3, 2]),
        ]
        let groups = ParameterGroup.standard(params, weightDecay: 0.1)
        XCTAssertEqual(groups[0].names, ["model.layers.0.mlp.up_proj.weight"])
        XCTAssertEqual(groups[0].weightDecay, 0.1)
        XCTAssertEqual(Set(groups[1].names), ["model.embed_tokens.weight", "model.norm.weight"])
        XCTAssertEqual(groups[1].weightDecay, 0)
    }
}

final class ScheduleTests: XCTestCase {
    /// transformers' get_cosine_schedule_with_warmup(3, 10) and get_cosine_with_min_lr_schedule_with_warmup(…, 0.1).
    func testCosineMatchesHuggingFace() {
        let plain: [Double] = [0, 0.333333333, 0.666666667, 1, 0.950484434, 0.811744901, 0.611260467, 0.388739533,
                               0.188255099, 0.049515566, 0, 0.049515566]
        let floor: [Double] = [0, 0.333333333, 0.666666667, 1, 0.955435991, 0.830570411, 0.65013442, 0.44986558,
                               0.269429589, 0.144564009, 0.1, 0.144564009]
        for step in 0..<12 {
            XCTAssertEqual(LearningRateSchedule.cosine(warmupSteps: 3, totalSteps: 10).factor(at: step), plain[step], accuracy: 1e-9)
            XCTAssertEqual(LearningRateSchedule.cosine(warmupSteps: 3, totalSteps: 10, minRatio: 0.1).factor(at: step), floor[step], accuracy: 1e-9)
        }
        XCTAssertEqual(LearningRateSchedule.cosine(warmupSteps: 0, totalSteps: 4).rate(at: 2, base: 2), 1, accuracy: 1e-7)
    }

    func testConstantAndWarmupRatio() {
        XCTAssertEqual(LearningRateSchedule.constant().factor(at: 0), 1)
        XCTAssertEqual(LearningRateSchedule.constant(warmupSteps: 4).factor(at: 1), 0.25)
        XCTAssertEqual(LearningRateSchedule.constant(warmupSteps: 4).factor(at: 9), 1)
        XCTAssertEqual(LearningRateSchedule.warmupSteps(ratio: 0.03, totalSteps: 1000), 30)
        XCTAssertEqual(LearningRateSchedule.warmupSteps(ratio: 0.03, totalSteps: 101), 4)
    }
}

final class ClippingTests: XCTestCase {
    /// torch.nn.utils.clip_grad_norm_([x, y], 6.5) with grads [3, 4] and [12]: norm 13, grads halved.
    func testClipsToTheGlobalNormAndReturnsTheNormBefore() {
        let x = Tensor([0, 0], shape: [2], requiresGrad: true), y = Tensor([0], shape: [1], requiresGrad: true)
        (x * Tensor([3, 4], shape: [2])).sum().backward()
        (y * 12).sum().backward()
        let norm = clipGradientNorm([x, y], maxNorm: 6.5)
        XCTAssertEqual(norm, 13, accuracy: 1e-6)
        XCTAssertEqual(x.grad!.scalars[0], 1.5, accuracy: 1e-6)
        XCTAssertEqual(x.grad!.scalars[1], 2, accuracy: 1e-6)
        XCTAssertEqual(y.grad!.scalars[0], 6, accuracy: 1e-6)
        // Below the threshold nothing changes.
        XCTAssertEqual(clipGradientNorm([x, y], maxNorm: 100), 6.5, accuracy: 1e-5)
        XCTAssertEqual(y.grad!.scalars[0], 6, accuracy: 1e-6)
    }

    func testGradientAccumulationOverMicroBatchesEqualsOneBatch() {
        // Σ over 2 micro-batches of (sum-reduced loss) scaled by 1/total equals the mean loss of the whole batch.
        let w = Tensor([0.3, -0.2, 0.5, 0.1], shape: [2, 2], requiresGrad: true)
        let x = Tensor([1, 2, 3, 4, 5, 6, 7, 8], shape: [4, 2])
        let targets = [0, 1, -100, 1]
        let full = Tensor.crossEntropy(x.matmul(w, transposeOther: true), targets: targets)
        full.backward()
        let reference = w.grad!.scalars
        w.releaseGrad()
        let counted = 3
        for part in [0..<2, 2..<4] {
            let xs = x.slice(axis: 0, part)
            let loss = Tensor.crossEntropy(xs.matmul(w, transposeOther: true), targets: Array(targets[part]), reduction: .sum)
            loss.backward()
        }
        scaleGradients([w], by: 1 / Float(counted))
        for (a, b) in zip(w.grad!.scalars, reference) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }
}
