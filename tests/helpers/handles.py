"""Stand-ins for Serve's DeploymentHandle methods and responses, for faults Serve cannot be made to produce on a CPU."""

import asyncio


class Response:
    def __init__(self, outcome):
        self.outcome = outcome
        self.cancelled = False

    def __await__(self):
        async def resolve():
            await asyncio.sleep(0)
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

        return resolve().__await__()

    def cancel(self):
        self.cancelled = True


class Call:
    """A handle method answering with fn(*args), and counting calls."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = []

    def remote(self, *args):
        self.calls.append(args)
        try:
            return Response(self.fn(*args))
        except Exception as exc:
            return Response(exc)
