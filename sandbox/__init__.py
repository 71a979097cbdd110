"""An emulator of the parts of YooKassa API v3 the billing service uses, with its payment page.

Pure Python (no Django): `SandboxServer(SandboxConfig(...)).start()` in tests, or
`manage.py runsandbox` in the local run. It is never used when real credentials are configured.
"""
