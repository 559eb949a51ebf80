"""The single default config tree. Every key is documented where it is defined.

Units are in the key names or comments: ``*_EPOCH(S)`` count epochs, ``*_ITERS`` count iterations.
Pixel statistics are in 0-255 units (normalisation happens inside the model, fast-reid convention).
"""

from .config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------------------------------------- #
# Model
# ---------------------------------------------------------------------------------------------- #
_C.MODEL = CN()
# "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N" (one process: GPU N, made the
# current CUDA device; several processes each take their local rank's GPU: use "cuda").
_C.MODEL.DEVICE = "auto"
# Name in META_ARCH_REGISTRY.
_C.MODEL.META_ARCHITECTURE = "Baseline"
# Store the model's 4-D weights channels-last (NHWC): convolutions then produce NHWC activations,
# which oneDNN (CPU) and cuDNN run faster for CDNet's depthwise-heavy blocks (CPU training at
# 96x48: 1.4x). The computed values are the same up to float rounding.
_C.MODEL.CHANNELS_LAST = True
# Checkpoint whose weights are loaded (weights only). Every tensor of the model must be set by it
# (only classifier tensors of another size are skipped): anything else is an error naming the keys.
# Ignored by --resume, which restores the last checkpoint of OUTPUT_DIR instead.
_C.MODEL.WEIGHTS = ""
# ImageNet (or any) checkpoint used to initialise a fresh run: every key whose name and shape
# match is loaded, classifiers ("classifier" in the key) never are; what was not loaded is logged.
# Applied only when training starts from scratch: --resume from a checkpoint of OUTPUT_DIR ignores
# it. MODEL.WEIGHTS, if also set, is loaded after it.
_C.MODEL.PRETRAIN_PATH = ""
# Per-channel RGB mean/std in 0-255 units (ImageNet statistics by default).
_C.MODEL.PIXEL_MEAN = [123.675, 116.28, 103.53]
_C.MODEL.PIXEL_STD = [58.395, 57.12, 57.375]

_C.MODEL.BACKBONE = CN()
# Name in BACKBONE_REGISTRY: "CDNet", "CNet" (or a project's backbone).
_C.MODEL.BACKBONE.NAME = "CDNet"
# Channel multiplier; each width becomes floor(PLANES[i] * WIDTH_MULT / 4) * 4.
_C.MODEL.BACKBONE.WIDTH_MULT = 1.0
# CDNet/CNet: the searched architecture. A shipped name ("cdnet_top2", "cnet_top2"), or a genotype
# JSON file (ours or the authors' format): absolute, relative to the config file, or to the cwd.
_C.MODEL.BACKBONE.GENOTYPE = "cdnet_top2"
# Searchable blocks per stage (a DownSample follows every stage but the last).
_C.MODEL.BACKBONE.STAGES = [2, 2, 2]
# Stem width followed by the width of every stage (len(STAGES) + 1 entries).
_C.MODEL.BACKBONE.PLANES = [64, 256, 384, 512]
# The shared SE-style gate on both branches of every combined block.
_C.MODEL.BACKBONE.ADAPTIVE_FUSION = True
# "imagenet": 7x7/2 conv + max-pool (stride 4); "cifar": 3x3/1 conv (stride 1, for 32x32 images).
_C.MODEL.BACKBONE.STEM = "imagenet"

_C.MODEL.HEADS = CN()
# Name in HEAD_REGISTRY: "FBLNeck" (the paper's re-ID neck), "GlobalNeck" (its global branch
# only: the ImageNet neck), "BLNeck".
_C.MODEL.HEADS.NAME = "FBLNeck"
# Number of training classes. 0 = filled in from the training set when training starts.
_C.MODEL.HEADS.NUM_CLASSES = 0
# Hidden layers of the classification branch: Linear -> BN1d -> ReLU per entry.
_C.MODEL.HEADS.FC_DIMS = [512]
# Dropout probability on the pooled features (0 disables it).
_C.MODEL.HEADS.DROPOUT = 0.2
# FBLNeck: horizontal strips of the local branch, and the width of its 1x1 squeeze conv.
_C.MODEL.HEADS.NUM_PARTS = 2
_C.MODEL.HEADS.PART_DIM = 128
# Classification mode: eval returns class scores instead of the re-ID embedding.
_C.MODEL.HEADS.CLASSIFICATION = False

_C.MODEL.NORM = CN()
# In a multi-process run, BatchNorm statistics over the batch of all processes (SyncBatchNorm on
# CUDA, GlobalBatchNorm on CPU), as one process computes them. No effect with one process.
_C.MODEL.NORM.SYNC = True

_C.MODEL.LOSSES = CN()
# Loss terms applied to every (logits, feature) branch the head returns; the total is their sum.
_C.MODEL.LOSSES.NAMES = ("CrossEntropyLoss", "TripletLoss")
_C.MODEL.LOSSES.CE = CN()
# Label-smoothing epsilon (0 = plain cross-entropy).
_C.MODEL.LOSSES.CE.EPSILON = 0.0
_C.MODEL.LOSSES.CE.SCALE = 1.0
_C.MODEL.LOSSES.TRI = CN()
_C.MODEL.LOSSES.TRI.MARGIN = 0.3
# L2-normalise the features before the triplet distance (the paper does not).
_C.MODEL.LOSSES.TRI.NORM_FEAT = False
_C.MODEL.LOSSES.TRI.SCALE = 1.0
# In a multi-process run, mine the hardest positives/negatives over the batch of all processes
# (all-gathered; gradients reach each process's own part), as one process does.
_C.MODEL.LOSSES.TRI.GATHER = True

# ---------------------------------------------------------------------------------------------- #
# Input pipeline
# ---------------------------------------------------------------------------------------------- #
_C.INPUT = CN()
# [H, W] of training and test images.
_C.INPUT.SIZE_TRAIN = [256, 128]
_C.INPUT.SIZE_TEST = [256, 128]
_C.INPUT.FLIP = CN()
_C.INPUT.FLIP.ENABLED = True
_C.INPUT.FLIP.PROB = 0.5
# Zero padding on every side followed by a random crop back to SIZE_TRAIN.
_C.INPUT.PADDING = CN()
_C.INPUT.PADDING.ENABLED = True
_C.INPUT.PADDING.SIZE = 10
# Random erasing (Zhong et al.): area 2%-40% of the image, aspect 0.3-3.33, filled with PIXEL_MEAN.
# Off for the paper's configs: the original implementation never erased anything.
_C.INPUT.REA = CN({"ENABLED": False, "PROB": 0.5})
# Cutout (DeVries & Taylor) on every training image, a LENGTH x LENGTH square (clipped at the
# borders) filled with MODEL.PIXEL_MEAN, i.e. zero after normalisation (the CIFAR-100 recipe).
_C.INPUT.CUTOUT = CN({"ENABLED": False, "LENGTH": 16})
# RandomResizedCrop to SIZE_TRAIN (area fraction SCALE, aspect ratio w/h RATIO) instead of the exact
# resize (the ImageNet recipe; combine with PADDING.ENABLED False).
_C.INPUT.RANDOM_RESIZED_CROP = CN()
_C.INPUT.RANDOM_RESIZED_CROP.ENABLED = False
_C.INPUT.RANDOM_RESIZED_CROP.SCALE = [0.08, 1.0]
_C.INPUT.RANDOM_RESIZED_CROP.RATIO = [0.75, 1.3333333333333333]
# Test resize: > 0 resizes the shorter side to this many pixels, then centre-crops SIZE_TEST
# (ImageNet: 256 then 224); 0 resizes to exactly SIZE_TEST.
_C.INPUT.RESIZE_SHORT_TEST = 0
# The resize of the exact (non-random) train and test resizes: "pil" (bilinear with antialiasing,
# torchvision's default) or "cv2" (OpenCV INTER_LINEAR, no antialiasing: what trackers such as
# boxmot do to crops at deployment), so that training-time and deployment-time resize can agree.
_C.INPUT.RESIZE_BACKEND = "pil"

# ---------------------------------------------------------------------------------------------- #
# Datasets and loaders
# ---------------------------------------------------------------------------------------------- #
_C.DATASETS = CN()
# Training datasets (names in DATASET_REGISTRY); several are concatenated with namespaced pids.
_C.DATASETS.NAMES = ("SyntheticReID",)
# Test datasets; each is evaluated separately.
_C.DATASETS.TESTS = ("SyntheticReID",)
# Folder holding the datasets. "" = $CDNET_DATASETS if set, else "datasets" (resolved at setup).
_C.DATASETS.ROOT = ""

# Options of one dataset are defined next to it (e.g. DATASETS.MSMT17_COMBINE_VAL in
# data/datasets/msmt17.py, DATASETS.CUSTOM_DIR in data/datasets/custom.py).
# (Classification datasets -- CIFAR100, ImageNet -- always train with a shuffled TrainingSampler,
# whatever DATALOADER.SAMPLER_TRAIN says, and are evaluated with exact top-1/top-5.)

_C.DATALOADER = CN()
# "IdentitySampler" (P x K batches) or "TrainingSampler" (plain shuffling).
_C.DATALOADER.SAMPLER_TRAIN = "IdentitySampler"
# K: images per identity in a P x K batch.
_C.DATALOADER.NUM_INSTANCE = 4
# Loader worker processes per rank (training and test).
_C.DATALOADER.NUM_WORKERS = 4
# Undecodable or missing image files: "fail" stops with an error naming the file; "skip" logs the
# path and a running count and goes on: in training the image is replaced by another image of the
# same identity/class (so a P x K batch keeps P identities x K images), in evaluation it is left
# out of the metrics. Never retried; an identity without any readable image still fails.
_C.DATALOADER.ON_BAD_IMAGE = "fail"

# ---------------------------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------------------------- #
_C.SOLVER = CN()
# "SGD", "Adam" or "AdamW".
_C.SOLVER.OPT = "SGD"
_C.SOLVER.MAX_EPOCH = 350
# Total batch over all ranks.
_C.SOLVER.IMS_PER_BATCH = 64
# Iterations per epoch. 0 = the epoch of the training sampler: with IdentitySampler the original
# code's, sum over identities of max(n_images, K) rounded down to a multiple of K, // IMS_PER_BATCH
# (Market-1501: about 184); with TrainingSampler, number of training images // IMS_PER_BATCH.
_C.SOLVER.ITERS_PER_EPOCH = 0
# The LR the optimizer starts from (every schedule is a multiple of it). With SCHED "MultiStep" and a
# non-empty LR_LIST it must equal LR_LIST[0] (else an error: change both, or set LR_LIST []).
_C.SOLVER.BASE_LR = 0.065
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 5e-4
# Weight decay of normalisation-layer parameters and of biases; None = same as WEIGHT_DECAY
# (the paper decays everything).
_C.SOLVER.WEIGHT_DECAY_NORM = None
_C.SOLVER.WEIGHT_DECAY_BIAS = None
_C.SOLVER.BIAS_LR_FACTOR = 1.0

# LR schedule, a function of the iteration (stepped every iteration):
#   "MultiStep":   LR_LIST[k] (LR_LIST[0] must equal BASE_LR), or BASE_LR * GAMMA**k when LR_LIST
#                  is empty, where k is the number of MILESTONES reached; milestones are absolute
#                  1-based epochs, so with MILESTONES [150] epochs 1..149 use LR_LIST[0] and epoch
#                  150 onward LR_LIST[1].
#   "Cosine":      BASE_LR -> ETA_MIN_LR along a half cosine over MAX_EPOCH.
#   "Exponential": BASE_LR * GAMMA**E during 1-based epoch E (the ImageNet recipe: 0.1 * 0.97**E).
_C.SOLVER.SCHED = "MultiStep"
_C.SOLVER.MILESTONES = [150, 225, 300]
_C.SOLVER.LR_LIST = [0.065, 0.0065, 0.00065, 0.000065]
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.ETA_MIN_LR = 1e-4
# Warm-up overlaps the start of the schedule (milestones are not shifted).
# "linear": factor ramps from WARMUP_FACTOR to 1 over WARMUP_ITERS; "constant": stays WARMUP_FACTOR.
_C.SOLVER.WARMUP_ITERS = 0
_C.SOLVER.WARMUP_FACTOR = 0.1
_C.SOLVER.WARMUP_METHOD = "linear"

# Save a checkpoint every CHECKPOINT_PERIOD epochs (and always at the end).
_C.SOLVER.CHECKPOINT_PERIOD = 20
# Keep at most this many periodic checkpoints (0 = keep all).
_C.SOLVER.MAX_TO_KEEP = 0

# Mixed precision through torch.amp: fp16 + GradScaler on CUDA, bf16 on CPU (for CDNet on the CPU
# slower than fp32 and less accurate, measured: README, "CPU speed").
_C.SOLVER.AMP = CN()
_C.SOLVER.AMP.ENABLED = False

_C.SOLVER.CLIP_GRADIENTS = CN()
_C.SOLVER.CLIP_GRADIENTS.ENABLED = False
# "norm" (clip the global norm) or "value" (clip each gradient element).
_C.SOLVER.CLIP_GRADIENTS.TYPE = "norm"
_C.SOLVER.CLIP_GRADIENTS.VALUE = 5.0
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0

# ---------------------------------------------------------------------------------------------- #
# Test
# ---------------------------------------------------------------------------------------------- #
_C.TEST = CN()
# Evaluate every EVAL_PERIOD epochs and at the end; 0 = only at the end.
_C.TEST.EVAL_PERIOD = 20
# Also evaluate before the first iteration (the untrained network's score, for comparison).
_C.TEST.EVAL_AT_START = False
# Total test batch over all ranks.
_C.TEST.IMS_PER_BATCH = 128
# "cosine" or "euclidean" (squared); with FEAT_NORM both give the same ranking.
_C.TEST.METRIC = "cosine"
# L2-normalise the embeddings before computing distances.
_C.TEST.FEAT_NORM = True
# Average the embeddings of each image and its horizontal mirror.
_C.TEST.FLIP = CN()
_C.TEST.FLIP.ENABLED = False
# Largest rank of the CMC curve.
_C.TEST.MAX_RANK = 50
# Metric the best checkpoint ("model_best") is selected on; "" disables best tracking.
_C.TEST.BEST_METRIC = "mAP"

# Re-ranking and query expansion (cdnet_reid/evaluation/rerank.py and query_expansion.py).
# Order in ReidEvaluator: FEAT_NORM -> AQE (-> FEAT_NORM) -> distances -> re-ranking.
# Both are memory-bounded (chunked), MSMT17-sized test sets included.
# k-reciprocal re-ranking (Zhong et al., CVPR 2017) of the query x gallery distances:
# final = (1 - LAMBDA) * Jaccard(k-reciprocal sets of K1 neighbours, local expansion over K2)
#         + LAMBDA * row-normalised original distance.
_C.TEST.RERANK = CN()
_C.TEST.RERANK.ENABLED = False
_C.TEST.RERANK.K1 = 20
_C.TEST.RERANK.K2 = 6
_C.TEST.RERANK.LAMBDA = 0.3
# Average query expansion (alpha-weighted, fast-reid's "aqe"): QE_TIME times, every query and
# gallery embedding becomes the mean of its QE_K most similar embeddings weighted by sim**ALPHA.
_C.TEST.AQE = CN()
_C.TEST.AQE.ENABLED = False
_C.TEST.AQE.QE_TIME = 1
_C.TEST.AQE.QE_K = 5
_C.TEST.AQE.ALPHA = 3.0

# ---------------------------------------------------------------------------------------------- #
# Trainer
# ---------------------------------------------------------------------------------------------- #
_C.TRAINER = CN()
# Name in TRAINER_REGISTRY: "DefaultTrainer", or "SearchTrainer" (the architecture search:
# alternating weight / architecture steps, registered by cdnet_reid.search).
_C.TRAINER.NAME = "DefaultTrainer"

# ---------------------------------------------------------------------------------------------- #
# Misc
# ---------------------------------------------------------------------------------------------- #
_C.OUTPUT_DIR = "logs/default"
# Random seed of Python, NumPy, torch and the samplers; < 0 draws one (it is logged and saved).
_C.SEED = -1
# Deterministic algorithms (torch.use_deterministic_algorithms, cuDNN deterministic) for
# bit-reproducible runs: an operation without a deterministic implementation raises (no warn-only).
_C.DETERMINISTIC = False
# cuDNN picks its convolution algorithms by timing them (fixed input sizes, as here), rather than by
# heuristic, which often chooses slow kernels for channels-last depthwise convolutions. Off with
# DETERMINISTIC.
_C.CUDNN_BENCHMARK = True
# Console/metrics-file period in iterations.
_C.LOG_PERIOD = 20
