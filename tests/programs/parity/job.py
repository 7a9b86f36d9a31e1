"""quantum-serverless's tests/resources/job.py: prints 42."""

print(42)
