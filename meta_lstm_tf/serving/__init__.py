"""Serving: the meta-learner as SavedModels for TensorFlow Serving.

    validation.py  in-graph checks of the inputs, and the request limits
    decoding.py    bounded decoding of encoded images, naming bad files
    modules.py     the two servable tf.Modules
    export.py      versioned export, from a rule or a training workdir
    warmup.py      TF Serving's warm-up requests, one per signature
    support.py     support sets from image folders


Two SavedModels, each written to `EXPORT_BASE/<version>/` (integer versions,
as TF Serving expects; a version directory appears only once complete):

  adapt-and-classify  The meta-learned system: the learned initial learner
      parameters theta_0 and the meta-LSTM. Each request carries an episode
      (support images and labels, query images); the graph adapts the learner
      with T meta-LSTM steps and classifies the queries, through
      `inner_loop.adapt_and_classify(..., training=False)`, the function
      evaluation calls (`inner_loop.adapt`, the one inner loop). T, N and the
      batch-norm settings are those of training.
        serving_default  support_images float32 [S, H, W, C],
                         support_labels int32 [S], query_images float32
                         [Q, H, W, C] -> logits [Q, N], probabilities [Q, N],
                         classes int32 [Q].
        encoded_images   the same with support_images / query_images string
                         [S] / [Q], encoded PNG/JPEG bytes (REST
                         clients send them as {"b64": ...}).
  adapted learner  The learner adapted once to a fixed support set, a plain
      classifier:
        serving_default  images float32 [B, H, W, C] -> probabilities [B, N],
                         classes int32 [B], class_names string [B].
        encoded_images   images string [B] -> the same.

Images are natural images as clients have them: values in [0, 1] (or
encoded files), grayscale or RGB, any size up to the export's limits; for
an Omniglot model white background and dark strokes, for a photograph model
(mini-ImageNet, image folders) photographs, converted to the channels it
was trained on (RGB for mini-ImageNet; `metadata['channels']`).
Preprocessing (`image_ops.preprocess_images`, the function the training
pipeline uses, after the same decoder as `image_ops.decode_images`) runs
inside the graph, so the learner sees exactly what it saw
in training. Inputs are validated in the graph: a bad request fails with
`InvalidArgument` naming the input, and the model keeps serving. Each
export fixes the largest request it accepts (`validation.ServingLimits`:
support and query counts, image height and width, recorded in its metadata)
and checks it before decoding or adapting anything; an encoded image's size
is read from its header, so a small file that would decode to a huge image
is refused undecoded, and images are decoded one at a time. Only standard
TensorFlow ops are used (no `PyFunc`), so the C++ loader of TF Serving and
`saved_model_cli` load the models.

Shape glossary:
  S: support images (any number of shots per class, every class present);
  Q: query images;
  B: images to classify; N: ways, fixed at training;
  H, W, C: input image height, width and channels (C in {1, 3});
  I: the learner's image side (`LearnerConfig.image_size`);
  P: learner coordinates; T: inner steps.
"""
