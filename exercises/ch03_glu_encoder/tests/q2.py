OK_FORMAT = True

test = {   'name': 'q2',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> with own_work():\n'
                                               '...     layer = EncoderLayer(2, 4)\n'
                                               '...     y = layer(torch.randn(1, 2, 100))\n'
                                               ">>> assert y.shape == (1, 4, 24), f'expected shape (1, 4, 24), got {tuple(y.shape)}'\n"
                                               ">>> assert tuple(layer.conv.weight.shape) == (4, 2, 8), 'conv: Conv1d(in_channels, channels, kernel_size, stride)'\n"
                                               ">>> assert tuple(layer.rewrite.weight.shape) == (8, 4, 1), 'rewrite: Conv1d(channels, 2 * channels, 1)'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
