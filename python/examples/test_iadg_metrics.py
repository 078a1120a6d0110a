"""The IADG face anti-spoofing metrics (ROC, AUC, EER by Brent's method, the threshold at the EER, APCER, BPCER,
HTER, accuracy, video-level averaging), written the way a user would with scikit-learn and SciPy, and certified
against iadg.metrics. A NumPy function: only outputs are compared (there are no gradients)."""
import numpy as np
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import auc, roc_curve

import certify


def fas_metrics(scores, labels, first_threshold=0, videos=None, video_level=False):
    out = {}
    if video_level:
        order = list(dict.fromkeys(videos.tolist()))  # videos in order of first appearance
        scores = np.array([scores[videos == v].sum() / np.sum(videos == v) for v in order])
        labels = np.array([labels[videos == v][0] for v in order])
        out.update(video_scores=scores, video_labels=labels)
    fpr, tpr, thresholds = roc_curve(labels, scores, pos_label=0)  # real (label 0) is the positive class
    thresholds = thresholds.astype(np.float64)
    # The prepended (0, 0) point's threshold changed in scikit-learn 1.3: +inf, before: max(score) + 1.
    thresholds[0] = np.inf if first_threshold == 0 else scores.max() + 1
    eer = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    threshold = float(interp1d(fpr, thresholds)(eer))
    predicted_real, real = scores > threshold, labels == 0
    tp, fn = np.sum(predicted_real & real), np.sum(~predicted_real & real)
    fp, tn = np.sum(predicted_real & ~real), np.sum(~predicted_real & ~real)
    apcer, bpcer = fp / (fp + tn), fn / (fn + tp)
    out.update(fpr=fpr, tpr=tpr, thresholds=thresholds, roc_points=len(fpr), auc=auc(fpr, tpr), eer=eer,
               threshold=threshold, tp=tp, fn=fn, fp=fp, tn=tn, apcer=apcer, bpcer=bpcer, hter=(apcer + bpcer) / 2,
               acc=(tp + tn) / len(labels))
    return out


COMPARED = ["fpr", "tpr", "thresholds", "roc_points", "auc", "eer", "threshold", "tp", "fn", "fp", "tn", "apcer", "bpcer",
            "hter", "acc", "video_scores", "video_labels"]


def test_fas_metrics():
    result = certify.check(fas_metrics, "iadg.metrics", framework="numpy", outputs=COMPARED)
    assert result.passed
