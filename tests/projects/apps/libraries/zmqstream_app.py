from zmq.eventloop.zmqstream import ZMQStream

stream_class = ZMQStream
