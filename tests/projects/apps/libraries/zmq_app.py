import zmq
import zmq.asyncio

ctx = zmq.asyncio.Context()
sock = ctx.socket(zmq.PULL)
