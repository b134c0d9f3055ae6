OK_FORMAT = True

test = {   'name': 'q1',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> conv = nn.Conv1d(4, 8, 3)\n'
                                               '>>> std0 = conv.weight.std().item()\n'
                                               '>>> with own_work():\n'
                                               '...     rescale_conv(conv, 0.1)\n'
                                               '>>> std1 = conv.weight.std().item()\n'
                                               ">>> assert abs(std1 - (std0 * 0.1) ** 0.5) < 1e-06, f'std {std0:.5f} -> {std1:.5f}, expected {(std0 * 0.1) ** 0.5:.5f}'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
