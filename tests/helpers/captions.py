"""A text that makes many captions, and a reader for SRT and WebVTT."""

CAPTIONED = (
    "The first sentence is short. The second one is a good deal longer than the first one was! "
    "Is the third a question? " * 12
)


def parse_cues(document: str, mark: str) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of each cue; `mark` is the decimal mark: "," (SRT) or "." (WebVTT)."""

    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        whole, millis = rest.split(mark)
        return int(hours) * 3600 + int(minutes) * 60 + int(whole) + int(millis) / 1000

    cues = []
    for block in document.strip().split("\n\n"):
        lines = block.splitlines()
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue  # the WEBVTT header
        start, end = lines[timing].split(" --> ")
        cues.append((seconds(start), seconds(end), " ".join(lines[timing + 1:])))
    return cues
