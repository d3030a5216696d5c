"""The paper's experiments and the studies around them (§6), built on the algorithms below.

Read in this order:

    config          TrainConfig / CovarianceTrainConfig: what one training run is
    peers           Entropy-SGD and SAM, the peers trained beside Algorithms 1 and 2
    training        the training loop (SGD, IS, SGLD, HR, peers) with its results file
    experiments     the paper's Figures 6.1–6.5 and Table 6.1 as named experiments
    readings        readings of the §6 setup and how they are scored against Table 6.1
    readings_study  the study that trains every reading, resumable, with its table and figure
    flatness        flatness measures of trained weights (local entropy, Hessian trace, sharpness)
"""
