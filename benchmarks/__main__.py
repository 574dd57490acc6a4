import sys

if sys.argv[1:2] == ["real-models"]:  # the long crossover run has its own command and section
    from benchmarks.bench_real_models import main as real_models

    sys.exit(real_models(sys.argv[2:]))

from benchmarks.run_all import main  # noqa: E402

sys.exit(main())
