"""Names that vulture takes for dead code but that are used (read by tests/test_dead_code.py, never run).

vulture matches by name: ``_.name`` keeps every attribute or method called
``name``, a bare ``NAME`` every variable, function or class of that name.
Keep an entry only with its reason; delete what is really unused instead.
"""

# ----- found by name ------------------------------------------------------------------

# codegen.layers.Lowerings reads each family module's tables with getattr, and the
# importers look kinds up in the merged registry.
KERAS_CLASSES
TORCH_MODULES
TORCH_LEAVES
TORCH_FUNCTIONS
TORCH_METHODS
ONNX_OPS
KERAS_CALLS
KERAS_COMPOSITES
_.keras_classes
_.torch_modules
_.torch_functions
_.torch_methods
_.onnx_ops

# RunRecord.add dispatches each message to _on_<type>.
_._on_started
_._on_batch
_._on_epoch
_._on_checkpoint
_._on_failed

# ----- called by a framework ------------------------------------------------------------

# keras.callbacks.Callback hooks, and the flag Keras reads to end fit().
_.on_epoch_begin
_.on_train_batch_end
_.on_epoch_end
_.stop_training

# Qt virtual methods overridden in widgets/.
_.closeEvent
_.contextMenuEvent
_.drawBackground
_.drawForeground
_.eventFilter
_.highlightBlock
_.mergeWith
_.mimeTypes
_.mouseMoveEvent
_.paintEvent
_.redo
_.stepBy
_.supportedDragActions
_.textFromValue
_.valueFromText
_.wheelEvent

# ----- API that the tests and benchmarks use ----------------------------------------------

_.defaults  # LayerSpec.defaults: tests/test_catalog_*.py
_.set_param  # Graph.set_param: tests/test_graph.py, tests/test_project.py
_.source_name  # TensorInfo.source_name: the source model's tensor name, tests/test_interop_onnx.py
reproduction_errors  # studio.interop.check: the real-architecture import tests
_.read_config  # RunFolder.read_config: tests/test_training.py
FakeRun  # widgets/fake_run.py: tests/test_gui_training.py, benchmarks/bench_gui.py
_.redraw_count  # TrainingPlots: benchmarks/bench_gui.py
_.curve_points  # TrainingPlots: tests/test_gui_training.py
_.error_text  # Inspector: tests/test_gui_inspector.py
_.problem_count  # ProblemsPanel: tests/test_gui_window.py
_.node_items  # GraphScene: tests/test_gui_canvas.py
_.edge_item  # GraphScene: tests/test_gui_canvas.py
learning_rates  # codegen.schedules: tests/test_training_features.py
read_events  # studio.training.tensorboard: tests/test_training_features.py

# FrameworkMetrics column numbers, named for every column of the buffers.
BSTEP
BRATE
ETIME

# The run list's last context menu, which tests/test_gui_dashboard.py opens and reads.
_.last_menu

# argparse reads a parser's formatter_class; a module __getattr__ is Python's lazy-import hook.
_.formatter_class
__getattr__

# The warm framework process: io.TextIOBase's protocol, and figures the benchmark and tests read.
_.writable  # studio.warm._ProgressStream: io.TextIOBase asks it
_.ready_seconds  # WarmProcess: benchmarks/bench_warm.py
_.warm_used  # Verifier: tests/test_warm_worker.py
