# Worker image for Dataflow (--sdk_container_image) and Flink (--environment_type=DOCKER --environment_config=...):
# Beam's own Python 3.11 SDK image, plus the CPU build of torch and this project's wheel (`make wheel` first).
#
# torch comes from the CPU index on purpose: PyPI's torch==2.13.0 is a multi-GB CUDA build that batch workers never
# use. pip treats 2.13.0+cpu as satisfying the wheel's torch==2.13.0 pin, so the second install adds no torch.
FROM apache/beam_python3.11_sdk:2.77.0

# Scoring's torch threads wait passively instead of spinning: spinning ones collapsed when another process held a
# core (1 part of the bench day scored in 117 s instead of 30 s; docs/performance.md). The runtime reads this once,
# when torch loads, so it belongs in the environment (as the Makefile does locally), not in library code.
ENV OMP_WAIT_POLICY=PASSIVE

RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY dist/podtarget-*.whl /tmp/
RUN pip install --no-cache-dir /tmp/podtarget-*.whl && rm /tmp/podtarget-*.whl
