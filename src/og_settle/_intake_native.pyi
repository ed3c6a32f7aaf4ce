from collections.abc import Callable

def verify_leaves(
    lines: list[str | bytes],
    first_line: int,
    name: str,
    params: tuple[bytes, bytes, int, int, int, str, str, str, str],
    signer_for: Callable[[bytes], bytes | None],
    secp: tuple[int, int, int, int, int],
    /,
) -> list[tuple[int, str, str | None, bytes | None, str, str, str | None, str] | None]: ...
