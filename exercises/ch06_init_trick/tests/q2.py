OK_FORMAT = True

test = {   'name': 'q2',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> model = tiny_demucs(rescale=0)\n'
                                               '>>> first = model.encoder[0][0]\n'
                                               '>>> std0 = first.weight.std().item()\n'
                                               '>>> with own_work():\n'
                                               '...     rescale_model(model)\n'
                                               '>>> assert abs(first.weight.std().item() - (std0 * 0.1) ** 0.5) < 1e-06, "rescale every convolution, the encoder\'s too"\n',
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
