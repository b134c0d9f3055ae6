OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> x = torch.randn(8, 4, 2, 100)\n'
                                               '>>> with own_work():\n'
                                               '...     y = flip_channels(x)\n'
                                               ">>> assert y.shape == x.shape, f'expected shape {tuple(x.shape)}, got {tuple(y.shape)}'\n"
                                               '>>> kept = (y == x).flatten(2).all(-1)\n'
                                               '>>> swapped = (y == x.flip(2)).flatten(2).all(-1)\n'
                                               ">>> assert torch.all(kept | swapped), 'every source must be kept whole or have its two channels swapped'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> _ = torch.manual_seed(1)\n'
                                               '>>> x = torch.randn(64, 4, 2, 10)\n'
                                               '>>> with own_work():\n'
                                               '...     y = flip_channels(x)\n'
                                               '>>> swapped = (y == x.flip(2)).flatten(2).all(-1)\n'
                                               ">>> assert 0.35 < swapped.float().mean() < 0.65, f'swapped {swapped.float().mean():.0%} of the sources, expected about 50%'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
